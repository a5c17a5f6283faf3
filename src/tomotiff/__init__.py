"""tomotiff: tomography volumes to TIFF images, with exact bit-depth reduction.

The data flow is one way: source -> selection -> window -> quantise -> sink -> manifest.
Each stage lives in the module of that name; :mod:`tomotiff.engine` streams them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tomotiff")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

from tomotiff.errors import TomotiffError
from tomotiff.quantise import FORMULA, dequantise, quantise
from tomotiff.window import Window

__all__ = ["FORMULA", "TomotiffError", "Window", "__version__", "dequantise", "quantise"]
