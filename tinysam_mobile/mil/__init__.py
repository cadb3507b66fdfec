"""A reference interpreter for Core ML ML Programs: runs an .mlpackage's `main` in numpy on any OS.

Core ML itself only exists on Apple platforms; this executes the shipped artifact (not the PyTorch
model it came from) so Linux CI can validate it. See MilProgram.
"""

from .errors import MilError, UnsupportedOpError
from .program import MilProgram

__all__ = ["MilProgram", "MilError", "UnsupportedOpError"]
