"""tomotiff: tomography volumes to TIFF images, with exact bit-depth reduction.

A pixel flows one way; each stage has its module:

- ``plan``: a Request (what was asked) becomes an immutable Plan (what will be done)
- ``source``: where images come from (HDF5 dataset, TIFF directory), opened lazily, read-only;
  ``tiff_stack``: one multi-page TIFF; ``chunks``: HDF5 chunks read and decoded outside h5py's lock
- ``hdf5``, ``keys``: finding datasets and a raw scan's image_key in NeXus files
- ``selection``: crop, N-D geometry, and the ImageSet each output holds
- ``window``: the intensity window (explicit, reference image, global); ``global_percentiles``:
  its exact streaming percentiles
- ``engine``: blocks on worker threads, one read feeding every output; ``buffers``: reused arrays
- ``binning``, ``conversion``, ``quantisation``: the per-tile stages (bin, keep/float32/quantise)
- ``sink``: TIFF files and stacks (plain, ImageJ, OME); ``calibration``: pixel size and value calibration;
  ``files``: atomic writes, checksums, input checks, locks
- ``manifest``: manifest.json (what was written, how), verify, shard merging
- ``pipeline``: one job from start to finish (the commands and the workflow's jobs run it)
- ``cli``, ``entry``: the commands; ``batch``, ``jobs``: the workflow's config, planning and jobs
- ``stats``: a reference image's statistics; ``report``: the HTML report of outputs (``tomotiff
  report``); ``synthetic``: demo and test data; ``pattern``,
  ``errors``: file-name patterns and the one user-facing exception

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
