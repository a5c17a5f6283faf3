"""tomotiff: tomography volumes to TIFF images, with exact bit-depth reduction.

The data flow is one way: source -> selection -> window -> quantise -> sink -> manifest.
Each stage has its module (source, selection, window, quantisation, sink, manifest);
:mod:`tomotiff.engine` streams them.

The names below are imported on first use, so that ``import tomotiff`` loads no numpy: the
commands (:mod:`tomotiff.entry`) set their process-wide options before numpy loads, and the
workflow's Snakefile, parsed again by every cluster job, imports only what it needs.
"""

import importlib

__version__ = "0.1.0"  # the one place it is set (pyproject.toml reads it); recorded in every output

_EXPORTS = {
    "FORMULA": "tomotiff.quantisation",
    "dequantise": "tomotiff.quantisation",
    "quantise": "tomotiff.quantisation",
    "TomotiffError": "tomotiff.errors",
    "Window": "tomotiff.window",
}
__all__ = ["FORMULA", "TomotiffError", "Window", "__version__", "dequantise", "quantise"]


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'tomotiff' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
