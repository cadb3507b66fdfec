"""Dataset-scale runs of `everything` and `validate`: a folder or list of images, one record per image in
a journal (so an interrupted run resumes), run here or on a Ray cluster, gathered into one output file."""

from .journal import Journal
from .run import run_images
from .sources import ImageItem, Listing, is_image_list, list_images

__all__ = ["ImageItem", "Journal", "Listing", "is_image_list", "list_images", "run_images"]
