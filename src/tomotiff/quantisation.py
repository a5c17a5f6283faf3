"""Linear bit-depth reduction with exact, documented rounding (the *quantise* stage).

Modelled on ``skimage.exposure.rescale_intensity``: one small function with an explicit
input window (lo, hi) and output range (0, 2**bits - 1).

Dtype rules: any real numeric input (bool, uint/int of any width, float16/32/64) is
accepted; the output is ``uint8`` for ``bits=8`` and ``uint16`` for ``bits=16``. The work is
done in float32 when that reproduces the float64 formula to within 1e-6 of the output's
full scale (the input converts to float32 exactly and the window is not far from zero
relative to its width), and in float64 otherwise.

The float32 work on float32 or uint16 images (reconstructions and raw counts) runs in one
compiled pass (``_quantise_loop.c``, built at install when a C compiler is there), which
computes bit for bit what the numpy passes compute; everything else runs in numpy.
"""

import functools
from collections.abc import Iterator

import numpy as np

from tomotiff.errors import TomotiffError

try:
    from tomotiff import _quantise_loop
except ImportError:  # not built at install (no C compiler): numpy computes the same values
    _quantise_loop = None

FORMULA_NAME = "linear-round-half-even-v1"
FORMULA = (
    "q = round_half_to_even((clip(x, lo, hi) - lo) / (hi - lo) * (2**bits - 1)); "
    "NaN -> 0, +Inf -> 2**bits - 1, -Inf -> 0"
)
INVERSE = "x = lo + q * (hi - lo) / (2**bits - 1)"
OUTPUT_DTYPES = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16)}
_BLOCK_ELEMENTS = 1 << 18  # 1 MiB of float32: the work buffer stays in cache

# float32 is exact enough when |lo| / (hi - lo) stays below this: the rounding error of the
# float32 path is about 2**-24 * (|lo| / (hi - lo) + 3) of full scale (see README).
_FLOAT32_MAX_OFFSET_RATIO = 8.0


def output_dtype(bits: int) -> np.dtype:
    """The unsigned integer type of a ``bits``-deep image."""
    try:
        return OUTPUT_DTYPES[bits]
    except KeyError:
        raise TomotiffError(f"bit depth must be 8 or 16, not {bits}; use -u 8 or -u 16") from None


def working_dtype(in_dtype: np.dtype, lo: float, hi: float) -> np.dtype:
    """float32 where it reproduces the float64 formula, else float64 (see module doc)."""
    in_dtype = np.dtype(in_dtype)
    exact_in_float32 = in_dtype.kind == "b" or (
        in_dtype.itemsize <= 2 if in_dtype.kind in "ui" else in_dtype.kind == "f" and in_dtype.itemsize <= 4
    )
    well_conditioned = abs(lo) <= _FLOAT32_MAX_OFFSET_RATIO * (hi - lo)
    return np.dtype(np.float32 if exact_in_float32 and well_conditioned else np.float64)


def check_window(lo: float, hi: float) -> None:
    """A usable window is finite with ``hi > lo``."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise TomotiffError(f"the window must be finite, got lo={lo}, hi={hi}")
    if hi <= lo:
        raise TomotiffError(f"hi ({hi}) must be greater than lo ({lo}); give --lo below --hi")


def quantise(image: np.ndarray, lo: float, hi: float, bits: int, out: np.ndarray | None = None) -> np.ndarray:
    """Map ``image`` linearly from [lo, hi] onto the integers 0 .. 2**bits - 1 (see ``FORMULA``).

    ``out`` (same shape, dtype ``output_dtype(bits)``) is filled and returned; it is
    allocated when omitted. ``image`` may be any strided view: the compiled loop runs on
    its contiguous pieces, numpy on blocks of rows through a small buffer, so no temporary
    the size of the image is made.
    """
    lo, hi = float(lo), float(hi)
    check_window(lo, hi)
    dtype = output_dtype(bits)
    image = np.asarray(image)
    if out is None:
        out = np.empty(image.shape, dtype)
    elif out.shape != image.shape or out.dtype != dtype:
        raise ValueError(f"out must have shape {image.shape} and dtype {dtype}")
    work = working_dtype(image.dtype, lo, hi)
    top = float(2**bits - 1)
    with np.errstate(over="ignore", invalid="ignore"):  # huge values become +-Inf, then clip
        offset, scale = work.type(lo), work.type(top / (hi - lo))
        if _compiled_loop_applies(image.dtype, work) and _rows_are_contiguous(image, out):
            for src, dst in _contiguous_pieces(image, out):
                _quantise_loop.run(src, dst, float(offset), float(scale), top)
        else:
            buffer, bounds = np.empty(_BLOCK_ELEMENTS, work), _bounds(work, top)
            for src, dst in _row_blocks(image, out):
                _quantise_block_with_numpy(src, dst, offset, scale, bounds, buffer)
    return out


_COMPILED_INPUTS = (np.dtype(np.float32), np.dtype(np.uint16))


def loop_in_use() -> str:
    """Which code quantises float32 and uint16 images (shown by --version)."""
    if _quantise_loop is not None:
        return "compiled"
    return "numpy, slower (the C loop was not built at install: install gcc and Python's headers, then reinstall)"


def _compiled_loop_applies(in_dtype: np.dtype, work: np.dtype) -> bool:
    """The compiled loop is installed and has a loop for this input type (in native byte order)."""
    return _quantise_loop is not None and work == np.float32 and in_dtype in _COMPILED_INPUTS


def _rows_are_contiguous(image: np.ndarray, out: np.ndarray) -> bool:
    """Each row (last axis) of both arrays is contiguous, so the arrays split into contiguous pieces."""
    return image.ndim > 0 and all(a.strides[-1] == a.itemsize or a.shape[-1] <= 1 for a in (image, out))


def _contiguous_pieces(image: np.ndarray, out: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Matching C-contiguous (input, output) views covering both arrays, as few as possible:
    a whole block in one call, so a worker takes the GIL back once per block, not per row.
    (Each return from C waits for the GIL, which another worker may hold for milliseconds.)"""
    if image.flags.c_contiguous and out.flags.c_contiguous:
        yield image, out
        return
    for src, dst in zip(image, out):
        yield from _contiguous_pieces(src, dst)


@functools.cache
def _bounds(work: np.dtype, top: float) -> tuple[np.ndarray, np.ndarray]:
    """Read-only arrays of 0 and ``top``, one block long, shared by every thread. numpy runs
    fmax/fmin vectorised on two arrays but not against a scalar: this is 2.5x faster per call
    and makes the numpy passes about 15% faster (numpy 2.4, AVX-512; benchmarks/README.md)."""
    low, high = np.zeros(_BLOCK_ELEMENTS, work), np.full(_BLOCK_ELEMENTS, top, work)
    low.flags.writeable = high.flags.writeable = False
    return low, high


def _quantise_block_with_numpy(src: np.ndarray, dst: np.ndarray, offset: np.floating, scale: np.floating,
                               bounds: tuple[np.ndarray, np.ndarray], buffer: np.ndarray) -> None:
    """The formula as numpy passes over one block that stays in cache: the reference the
    compiled loop is tested against, and the path for other types and for strided views."""
    low, high = (bound[: src.size].reshape(src.shape) for bound in bounds)
    tmp = buffer[: src.size].reshape(src.shape)
    np.subtract(src, offset, out=tmp, dtype=scale.dtype)
    np.multiply(tmp, scale, out=tmp)
    np.fmax(tmp, low, out=tmp)  # fmax/fmin drop NaN for the bound: NaN -> 0
    np.fmin(tmp, high, out=tmp)
    np.rint(tmp, out=tmp)  # round half to even
    np.copyto(dst, tmp, casting="unsafe")


def convert(image: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Copy ``image`` into ``out``'s dtype unchanged in value (nxs2tiff: keep or widen to float32).

    Binned means of integer data are rounded half to even back to the integer type."""
    if out.dtype.kind in "uib" and image.dtype.kind == "f":
        image = np.rint(image)
    np.copyto(out, image, casting="unsafe")
    return out


def dequantise(q: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """Map quantised values back to the original units (``INVERSE``), in float64.

    Each value comes back as the centre of its grey level, so the error is at most half a
    level, ``(hi - lo) / (2**bits - 1) / 2``, for pixels that were inside the window.
    """
    check_window(float(lo), float(hi))
    return lo + np.asarray(q, np.float64) * ((hi - lo) / (2**bits - 1))


def _row_blocks(image: np.ndarray, out: np.ndarray):
    """Yield matching (input, output) views of at most ``_BLOCK_ELEMENTS`` elements."""
    if image.ndim == 0 or image.size == 0:
        if image.size:
            yield image.reshape(1), out.reshape(1)
        return
    if image.ndim == 1:
        for start in range(0, image.shape[0], _BLOCK_ELEMENTS):
            yield image[start : start + _BLOCK_ELEMENTS], out[start : start + _BLOCK_ELEMENTS]
        return
    if image.ndim > 2:
        for plane_in, plane_out in zip(image, out):
            yield from _row_blocks(plane_in, plane_out)
        return
    width = max(image.shape[1], 1)
    if width > _BLOCK_ELEMENTS:
        for row_in, row_out in zip(image, out):
            yield from _row_blocks(row_in, row_out)
        return
    rows = _BLOCK_ELEMENTS // width
    for start in range(0, image.shape[0], rows):
        yield image[start : start + rows], out[start : start + rows]
