"""tinysam-mobile: TinySAM on phones. Reference pipeline, converters and validation."""

from .automatic_mask_generator import (EverythingConfig, TinySamDenseMaskGenerator,
                                       TinySamHierarchicalMaskGenerator)
from .checkpoint import load_tinysam
from .modeling import TinySam, TinySamConfig
from .predictor import TinySamPredictor

__version__ = "0.1.0"
__all__ = ["load_tinysam", "TinySam", "TinySamConfig", "TinySamPredictor", "EverythingConfig",
           "TinySamHierarchicalMaskGenerator", "TinySamDenseMaskGenerator", "__version__"]
