"""The output of `everything` over many images: one COCO-style JSON file, written from the journal."""

import json
from pathlib import Path
from typing import Any

from ..utils.files import atomic_path
from .journal import Journal

CATEGORIES = [{"id": 1, "name": "object", "supercategory": "object"}]  # everything mode is class-agnostic
ANNOTATION_FIELDS = ("segmentation", "area", "bbox", "predicted_iou", "stability_score", "point_coords")


def write_coco(out: "str | Path", journal: Journal, names: list[str], info: dict[str, Any]) -> dict[str, int]:
    """Images in `names` order (ids 1, 2, ... among those with records), their annotations (SAM's records
    plus id, image_id, category_id 1 and iscrowd 0, so pycocotools' COCO and COCOeval read the file) and
    "failed": [{file_name, error}]. Streams from the journal (a pass per list) and appears whole or not at all.
    Returns the counts written."""
    counts = {"images": 0, "annotations": 0, "failed": 0}
    with atomic_path(out) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(f'{{"info": {json.dumps(info)}, "categories": {json.dumps(CATEGORIES)}, "images": [')
        for record in journal.records(names):
            if "error" not in record:
                counts["images"] += 1
                image = {"id": counts["images"], "file_name": record["file_name"], "height": record["height"],
                         "width": record["width"]}
                f.write(("" if counts["images"] == 1 else ", ") + json.dumps(image))
        f.write('], "annotations": [')
        image_id = 0
        for record in journal.records(names):
            if "error" in record:
                continue
            image_id += 1
            for annotation in record["annotations"]:
                counts["annotations"] += 1
                entry = {"id": counts["annotations"], "image_id": image_id, "category_id": 1, "iscrowd": 0,
                         **{key: annotation[key] for key in ANNOTATION_FIELDS}}
                f.write(("" if counts["annotations"] == 1 else ", ") + json.dumps(entry))
        f.write('], "failed": [')
        failed = [{"file_name": r["file_name"], "error": r["error"]} for r in journal.records(names) if "error" in r]
        counts["failed"] = len(failed)
        f.write(", ".join(json.dumps(entry) for entry in failed) + "]}\n")
    return counts
