"""tomotiff: tomography volumes to TIFF images, with exact bit-depth reduction.

The data flow is one way: source -> selection -> window -> quantise -> sink -> manifest.
Each stage lives in the module of that name; :mod:`tomotiff.engine` streams them.
"""

__version__ = "0.1.0"  # the one place it is set (pyproject.toml reads it); recorded in every output

from tomotiff.errors import TomotiffError
from tomotiff.quantise import FORMULA, dequantise, quantise
from tomotiff.window import Window

__all__ = ["FORMULA", "TomotiffError", "Window", "__version__", "dequantise", "quantise"]
