"""Hierarchical vs dense everything mode on the same images and runner: work, time and agreement."""

import platform
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Iterator, Optional

import numpy as np

from ..automatic_mask_generator import (EverythingConfig, TinySamDenseMaskGenerator,
                                        TinySamHierarchicalMaskGenerator)
from ..runners import Runner
from ..utils.amg import rle_iou_matrix

PHOTOS = ("coffee", "chelsea", "astronaut", "rocket")
RECOVERY_IOU = 0.5  # a ground-truth object counts as recovered when some mask overlaps it this much


@dataclass(frozen=True)
class EverythingBenchmarkConfig:
    photos: tuple[str, ...] = PHOTOS  # scikit-image sample photos, by name
    scenes: int = 2  # generated scenes from the held-out seed range
    scene_size: int = 512
    generator: EverythingConfig = EverythingConfig()


def best_match_iou(reference: list, candidates: list) -> np.ndarray:
    """For each reference mask (COCO RLE), its best IoU with any candidate mask (0 without candidates)."""
    ious = rle_iou_matrix(reference, candidates)
    return ious.max(1) if ious.size else np.zeros(len(reference))


def benchmark_images(config: EverythingBenchmarkConfig) -> Iterator[tuple[str, np.ndarray, Optional[list]]]:
    """(name, RGB image, ground-truth RLEs or None) for every photo and scene."""
    import skimage.data

    from ..utils.amg import encode_rle

    for name in config.photos:
        yield name, getattr(skimage.data, name)(), None
    from ..data import SceneConfig, generate_scene
    from ..training.train import EVAL_SEED_START

    for i in range(config.scenes):
        seed = EVAL_SEED_START + i
        scene = generate_scene(seed, SceneConfig(height=config.scene_size, width=config.scene_size))
        yield f"scene-{seed}", scene.image, encode_rle(scene.masks)


def run_mode(generator, image: np.ndarray, on_progress: Callable[[int, int], None]) -> tuple[list, dict]:
    records = generator.generate(image, progress=on_progress)
    stats = generator.stats
    return [r["segmentation"] for r in records], {
        "prompts": stats.prompts,
        "prompts_per_round": stats.prompts_per_round,
        "decoder_calls": stats.decoder_calls,
        "prompts_with_masks": stats.prompts_with_masks,
        "wall_s": round(stats.total_s, 3),
        "cpu_s": round(stats.cpu_s, 3),
        "encode_s": round(stats.encode_s, 3),
        "masks_s": round(stats.masks_s, 3),
        "objects": len(records),
    }


def benchmark_everything(runner: Runner, config: EverythingBenchmarkConfig = EverythingBenchmarkConfig(),
                         on_progress: Callable[[str, int, int], None] = lambda label, done, planned: None
                         ) -> dict[str, Any]:
    """Run both modes on every benchmark image with one runner; per-image figures and a summary.

    Agreement: for each dense mask, the best IoU with a hierarchical mask; the mean is matched_miou.
    On generated scenes, recovery is the fraction of ground-truth objects some mask overlaps at IoU >= 0.5.
    """
    generator_config = replace(config.generator, output_mode="coco_rle")
    generators = {"hierarchical": TinySamHierarchicalMaskGenerator(runner, generator_config),
                  "dense": TinySamDenseMaskGenerator(runner, generator_config)}
    rows = []
    for name, image, truth in benchmark_images(config):
        row: dict[str, Any] = {"image": name, "size": list(image.shape[:2])}
        if truth is not None:
            row["truth_objects"] = len(truth)
        masks = {}
        for mode, generator in generators.items():
            masks[mode], row[mode] = run_mode(generator, image, lambda d, p, m=mode: on_progress(f"{name} {m}", d, p))
            if truth is not None:
                row[mode]["recovered"] = int((best_match_iou(truth, masks[mode]) >= RECOVERY_IOU).sum())
                row[mode]["recovery"] = round(row[mode]["recovered"] / len(truth), 4) if truth else None
        hier, dense = row["hierarchical"], row["dense"]
        matched = best_match_iou(masks["dense"], masks["hierarchical"])
        row["matched_miou"] = round(float(matched.mean()), 4) if matched.size else None
        row["object_count_ratio"] = round(hier["objects"] / dense["objects"], 4) if dense["objects"] else None
        row["wall_ratio"] = round(hier["wall_s"] / dense["wall_s"], 4)
        row["cpu_ratio"] = round(hier["cpu_s"] / dense["cpu_s"], 4)
        row["prompt_ratio"] = round(hier["prompts"] / dense["prompts"], 4)
        rows.append(row)

    def median(key: str) -> Optional[float]:
        values = [row[key] for row in rows if row[key] is not None]
        return round(statistics.median(values), 4) if values else None

    def pooled_recovery(mode: str) -> Optional[float]:
        """Ground-truth objects recovered over all scenes / all their objects."""
        truth = sum(row.get("truth_objects", 0) for row in rows)
        return round(sum(row[mode].get("recovered", 0) for row in rows) / truth, 4) if truth else None

    return {
        "machine": f"{platform.processor() or platform.machine()}, backend {runner.name}",
        "config": asdict(config),
        "images": rows,
        "summary": {**{key: median(key) for key in ("wall_ratio", "cpu_ratio", "prompt_ratio", "matched_miou",
                                                           "object_count_ratio")},
                    **{f"recovery_{mode}": pooled_recovery(mode) for mode in generators}},
    }
