"""Linear bit-depth reduction with exact, documented rounding (the *quantise* stage).

Modelled on ``skimage.exposure.rescale_intensity``: one small function with an explicit
input window (lo, hi) and output range (0, 2**bits - 1).

Dtype rules: any real numeric input (bool, uint/int of any width, float16/32/64) is
accepted; the output is ``uint8`` for ``bits=8`` and ``uint16`` for ``bits=16``. Every
output pixel is exactly ``FORMULA`` evaluated in float64, which numpy writes
``np.rint(((np.clip(x, lo, hi) - lo) / (hi - lo)) * top)`` for ``x`` as float64 (NaN -> 0),
whatever the input type and whichever of these ways computes it:

- float32 and uint16 images (native byte order, rows contiguous) when the compiled loop is
  built (``_quantise_loop.c``, at install when a C compiler is there): that loop, in float64,
  or in float32 where that is faster (``working_dtype``) with every stretch of pixels that
  holds one near a tie computed again in float64. For uint16 it first compares float32 with
  the formula on all 65536 values under the window; where they agree it checks no pixel.
- other 8- and 16-bit integers and bool: a table of the formula for every possible value
  (2**16 entries at most), computed in float64 once per (dtype, window, bits) and cached,
  applied by the compiled loop (rows contiguous) or ``np.take``.
- everything else: numpy passes over blocks of rows, in float64, or in float32 for 8-bit
  output of float16/float32 with every pixel near a tie computed again in float64.

A pixel is near a tie (k + 1/2) when its float32 value lies within ``float32_error_bound``
of one: further away, float32 rounds it as float64 does.
"""

import functools
from collections.abc import Iterator

import numpy as np

from tomotiff.dtypes import float32_holds
from tomotiff.errors import TomotiffError
from tomotiff.window import check_window

try:
    from tomotiff import _quantise_loop
except ImportError:  # not built at install (no C compiler): numpy computes the same values
    _quantise_loop = None

FORMULA_NAME = "linear-round-half-even-v2"
FORMULA = (
    "q = round_half_to_even(((clip(x, lo, hi) - lo) / (hi - lo)) * (2**bits - 1)), "
    "each operation in float64 rounded to nearest, on x converted to float64; "
    "NaN -> 0, +Inf -> 2**bits - 1, -Inf -> 0"
)
INVERSE = "x = lo + q * (hi - lo) / (2**bits - 1)"
OUTPUT_DTYPES = {8: np.dtype(np.uint8), 16: np.dtype(np.uint16)}
_BLOCK_ELEMENTS = 1 << 18  # 1 MiB of float32: the work buffers stay in cache

# float32 pays off while |lo| / (hi - lo) stays below this: its error bound grows with the
# ratio, and with it the share of pixels that need computing again in float64.
_FLOAT32_MAX_OFFSET_RATIO = 8.0
# ... and while the window's width keeps float32's constants normal numbers (the bound's premise).
_FLOAT32_WIDTHS = (2.0**-100, 2.0**100)


def output_dtype(bits: int) -> np.dtype:
    """The unsigned integer type of a ``bits``-deep image."""
    try:
        return OUTPUT_DTYPES[bits]
    except KeyError:
        raise TomotiffError(f"bit depth must be 8 or 16, not {bits}; use -u 8 or -u 16") from None


def working_dtype(in_dtype: np.dtype, lo: float, hi: float, bits: int) -> np.dtype:
    """float32 where it is the faster way to the formula's exact values, else float64.

    float32 arithmetic does twice the pixels per vector instruction and no division, but
    misses the float64 value by up to ``float32_error_bound``, so a pixel that close to a
    tie (k + 1/2) is computed again in float64. That pays off when the input converts to
    float32 exactly (``float32_holds``), the output has 8 bits (at 16 bits the bound is at
    least 0.012 of a grey level, and 2 to 3 % of pixels would be computed twice) and the
    window is not far from zero relative to its width. (The compiled loop also uses float32
    for uint16 images under windows where it has checked every value, ``_float32_right_for_uint16``.)

    >>> working_dtype(np.dtype(np.uint16), 100, 60000, 8), working_dtype(np.dtype(np.uint16), 100, 60000, 16)
    (dtype('float32'), dtype('float64'))
    """
    width = hi - lo
    use_float32 = (
        float32_holds(in_dtype)
        and bits == 8
        and abs(lo) <= _FLOAT32_MAX_OFFSET_RATIO * width
        and _FLOAT32_WIDTHS[0] <= width <= _FLOAT32_WIDTHS[1]
    )
    return np.dtype(np.float32 if use_float32 else np.float64)


def float32_error_bound(lo: float, hi: float, bits: int) -> float:
    """An upper bound on ``|t - v|``: ``t`` the float32 computation before rounding, ``v`` the
    formula in float64 before rounding, for every input float32 holds (``working_dtype``).

    With ``u = 2**-24`` (float32's unit roundoff), ``top = 2**bits - 1``, ``A = top / (hi - lo)``,
    the float32 constants ``offset = float32(lo)`` and ``scale = float32(top / (hi - lo))`` (so
    ``scale = A (1 + s)``, ``|s| <= u + 2**-52``) and ``T = (x - lo) A`` the exact unclipped value,
    the float32 steps give::

        fl32(fl32(x - offset) * scale) = (T + A (lo - offset)) (1 + e),   |e| <= 3.0001 u

    Clamping that to [0, top] (``t``) lands within ``3.0001 u top + A |lo - offset| (1 + 3.0001 u)``
    of ``V = clamp(T, 0, top)``, the exact formula: inside the window because clamping never
    increases a distance, beyond it because ``T`` lies past 0 or ``top`` by more than the error.
    The float64 formula rounds four times: ``|v - V| <= 4.0001 * 2**-53 V <= 2**-50 top``. A
    product below float32's normal range adds at most ``2**-150``. The factors are rounded up so
    that this float64 evaluation stays an upper bound. Requires ``2**-100 <= hi - lo <= 2**100``
    (both constants normal float32 numbers), as ``working_dtype`` does.

    >>> float32_error_bound(-0.0005, 0.0015, 8) < 1e-4
    True
    """
    top = 2**bits - 1
    offset_error = abs(lo - float(np.float32(lo)))  # exact in float64 (Sterbenz)
    return 3.001 * 2**-24 * top + 1.001 * top / (hi - lo) * offset_error + 2**-50 * top + 2**-149


def quantise(
    image: np.ndarray,
    lo: float,
    hi: float,
    bits: int,
    out: np.ndarray | None = None,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """Map ``image`` linearly from [lo, hi] onto the integers 0 .. 2**bits - 1 (``FORMULA``).

    Parameters
    ----------
    image : array of any real numeric dtype, any shape, any strides
    lo, hi : the window: ``lo`` maps to 0 and ``hi`` to ``2**bits - 1``; finite, ``lo < hi``
    bits : 8 or 16
    out : optional array of ``image``'s shape and dtype ``output_dtype(bits)``, filled and returned
    counts : optional int64 array of 3 to which the clipping tallies are added: the pixels
        written as 0 (NaN pixels among them), those written as ``2**bits - 1``, and the NaN
        pixels. Counted as each block is written (the compiled loop: while it is in cache), so
        they cost no second pass over the image.

    Returns
    -------
    uint8 (8 bits) or uint16 (16 bits) array: exactly the formula evaluated in float64.
    No temporary the size of the image is made.

    Examples
    --------
    >>> quantise(np.array([5000, 100, np.nan, np.inf]), 0, 30000, 8)  # 42.5 -> 42: half to even
    array([ 42,   1,   0, 255], dtype=uint8)
    >>> counts = np.zeros(3, np.int64)
    >>> _ = quantise(np.array([-1.0, np.nan, 0.5, 7.0]), 0, 1, 8, counts=counts)
    >>> counts  # at 0 (-1 and NaN), at 255 (7), NaN
    array([2, 1, 1])
    """
    lo, hi = float(lo), float(hi)
    check_window(lo, hi)
    dtype = output_dtype(bits)
    image = np.asarray(image)
    if out is None:
        out = np.empty(image.shape, dtype)
    elif out.shape != image.shape or out.dtype != dtype:
        raise ValueError(f"out must have shape {image.shape} and dtype {dtype}")
    if counts is not None and (counts.shape != (3,) or counts.dtype != np.int64):
        raise ValueError("counts must be an int64 array of 3")
    work, top = working_dtype(image.dtype, lo, hi, bits), float(2**bits - 1)
    with np.errstate(over="ignore", invalid="ignore"):  # huge values become +-Inf, then clamp
        compiled = _compiled_loop_applies(image.dtype) and _rows_are_contiguous(image, out)
        if compiled and image.dtype in _ARITHMETIC_INPUTS:
            kernel, args = _compiled_kernel(image.dtype, lo, hi, bits)
            for src, dst in _contiguous_pieces(image, out):
                kernel(src, dst, *args, counts)
        elif _has_table(image.dtype):
            table, index = _table(image.dtype, lo, hi, bits), image.view(_table_index(image.dtype))
            if compiled:
                for src, dst in _contiguous_pieces(index, out):
                    _quantise_loop.lookup(src, dst, table, counts)
            else:
                for src, dst in _row_blocks(index, out):
                    np.take(table, src, out=dst, mode="clip")  # copies with the GIL released
                    _tally(src, dst, top, counts)
        elif work == np.float32:
            constants = (*_float32_offset_scale(lo, hi, bits), _tie_margin(lo, hi, bits))
            bounds = _bounds(work, top)
            buffers = np.empty(_BLOCK_ELEMENTS, work), np.empty(_BLOCK_ELEMENTS, work), np.empty(_BLOCK_ELEMENTS, bool)
            for src, dst in _row_blocks(image, out):
                _quantise_block_float32(src, dst, lo, hi, top, constants, bounds, buffers)
                _tally(src, dst, top, counts)
        else:
            bounds, buffer = _bounds(work, top), np.empty(_BLOCK_ELEMENTS, work)
            for src, dst in _row_blocks(image, out):
                _quantise_block_float64(src, dst, lo, hi, top, bounds, buffer)
                _tally(src, dst, top, counts)
    return out


def _tally(src: np.ndarray, dst: np.ndarray, top: float, counts: np.ndarray | None) -> None:
    """The numpy passes' clipping tallies of one block just written (``quantise``'s ``counts``)."""
    if counts is not None:
        counts[0] += np.count_nonzero(dst == 0)
        counts[1] += np.count_nonzero(dst == top)
        counts[2] += np.count_nonzero(np.isnan(src)) if src.dtype.kind == "f" else 0


def loop_in_use() -> str:
    """Which code quantises float32 and uint16 images (shown by --version)."""
    if _quantise_loop is not None:
        return "compiled"
    return "numpy, slower (the C loop was not built at install: install gcc and Python's headers, then reinstall)"


_ARITHMETIC_INPUTS = (np.dtype(np.float32), np.dtype(np.uint16))  # native byte order


def _compiled_loop_applies(in_dtype: np.dtype) -> bool:
    """The compiled loop is installed and has a kernel for this input type: arithmetic for
    float32 and uint16, a table lookup for the other 8- and 16-bit integers and bool."""
    return _quantise_loop is not None and (in_dtype in _ARITHMETIC_INPUTS or _has_table(in_dtype))


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


def _compiled_kernel(in_dtype: np.dtype, lo: float, hi: float, bits: int) -> tuple:
    """The compiled kernel for this input type, window and depth, and its arguments between
    (source, target) and counts: float32 unchecked, float32 with the tie check, or float64."""
    if in_dtype == np.uint16 and _float32_right_for_uint16(lo, hi, bits):
        return _quantise_loop.float32, (lo, hi, *map(float, _float32_offset_scale(lo, hi, bits)), -1.0)  # unchecked
    if working_dtype(in_dtype, lo, hi, bits) == np.float32:
        constants = (*_float32_offset_scale(lo, hi, bits), _tie_margin(lo, hi, bits))
        return _quantise_loop.float32, (lo, hi, *map(float, constants))
    return _quantise_loop.exact, (lo, hi)


def _float32_offset_scale(lo: float, hi: float, bits: int) -> tuple[np.float32, np.float32]:
    """float32's ``lo`` and ``(2**bits - 1) / (hi - lo)``: t = (x - offset) * scale."""
    return np.float32(lo), np.float32((2**bits - 1) / (hi - lo))


def _tie_margin(lo: float, hi: float, bits: int) -> np.float32:
    """The largest float32 below ``1/2 - float32_error_bound``: a pixel whose float32 value
    ``t`` has ``|t - rint(t)| < margin`` lies further than the bound from every tie, so the
    float64 value rounds to the same integer."""
    return np.nextafter(np.float32(0.5 - float32_error_bound(lo, hi, bits)), np.float32(0))


@functools.lru_cache(maxsize=8)
def _float32_right_for_uint16(lo: float, hi: float, bits: int) -> bool:
    """Whether the float32 steps, unchecked, give the formula's grey level for every uint16
    value under this window: then the compiled loop checks no uint16 pixel (the check costs up
    to a quarter of its time on uint16, which is compute-bound). Most windows pass at 8 bits (100 ..
    60000 does; 0 .. 30000 does not: 5000 is 42.5, which float32 puts above the tie) and few
    at 16. The numpy passes compute what the compiled loop does, bit for bit (tested)."""
    values, fast = np.arange(1 << 16, dtype=np.uint16), np.empty(1 << 16, output_dtype(bits))
    bounds = _bounds(np.dtype(np.float32), float(2**bits - 1))
    scaled, rounded = np.empty(values.size, np.float32), np.empty(values.size, np.float32)
    _float32_steps(values, fast, *_float32_offset_scale(lo, hi, bits), bounds, scaled, rounded)
    return bool(np.array_equal(fast, _table(np.dtype(np.uint16), lo, hi, bits)))


def _has_table(in_dtype: np.dtype) -> bool:
    """8- and 16-bit integers and bool: few enough values for a table of them all."""
    return in_dtype.kind in "uib" and in_dtype.itemsize <= 2


def _table_index(in_dtype: np.dtype) -> np.dtype:
    """The native unsigned type whose values index ``in_dtype``'s table: the pixel's bytes, read
    as an unsigned number, so int16 -1 is entry 65535 and byte-swapped images need no conversion."""
    return np.dtype(f"u{in_dtype.itemsize}")


@functools.lru_cache(maxsize=8)
def _table(in_dtype: np.dtype, lo: float, hi: float, bits: int) -> np.ndarray:
    """The grey level of every value of ``in_dtype`` (8- or 16-bit integers, bool), by
    ``_table_index``: the formula in float64, once per window rather than once per pixel, read-only
    and shared by every thread. Bool images index it by their bytes, 0 and 1."""
    codes = np.arange(1 << (8 * in_dtype.itemsize), dtype=_table_index(in_dtype))
    values = codes if in_dtype.kind == "b" else codes.view(in_dtype)
    table = np.empty(codes.shape, output_dtype(bits))
    top = float(2**bits - 1)
    _quantise_block_float64(values, table, lo, hi, top, _bounds(np.dtype(np.float64), top), np.empty(codes.size))
    table.flags.writeable = False
    return table


@functools.cache
def _bounds(work: np.dtype, top: float) -> tuple[np.ndarray, np.ndarray]:
    """Read-only arrays of 0 and ``top``, one block long, shared by every thread. numpy runs
    fmax/fmin vectorised on two arrays but not against a scalar: this is 2.5x faster per call
    and makes the numpy passes about 15% faster (numpy 2.4, AVX-512; benchmarks/README.md)."""
    low, high = np.zeros(_BLOCK_ELEMENTS, work), np.full(_BLOCK_ELEMENTS, top, work)
    low.flags.writeable = high.flags.writeable = False
    return low, high


def _quantise_block_float64(
    src: np.ndarray,
    dst: np.ndarray,
    lo: float,
    hi: float,
    top: float,
    bounds: tuple[np.ndarray, np.ndarray],
    buffer: np.ndarray,
) -> None:
    """The formula in float64 as numpy passes over one block (at most ``_BLOCK_ELEMENTS``).

    It clamps to [0, top] after the arithmetic rather than clipping x to [lo, hi] before: the
    same grey levels, since each rounded step is monotone and ``hi`` maps to ``top`` exactly
    (``(hi - lo) / (hi - lo)`` is 1), and numpy's fmax/fmin against arrays are the fast clamp.
    """
    low, high = (bound[: src.size].reshape(src.shape) for bound in bounds)
    v = buffer[: src.size].reshape(src.shape)
    np.subtract(src, lo, out=v, dtype=np.float64)
    np.divide(v, hi - lo, out=v)
    np.multiply(v, top, out=v)
    np.fmax(v, low, out=v)  # fmax/fmin drop NaN for the bound: NaN -> 0
    np.fmin(v, high, out=v)
    np.rint(v, out=v)  # round half to even
    np.copyto(dst, v, casting="unsafe")


def _float32_steps(
    src: np.ndarray,
    dst: np.ndarray,
    offset: np.float32,
    scale: np.float32,
    bounds: tuple[np.ndarray, np.ndarray],
    scaled: np.ndarray,
    rounded: np.ndarray,
) -> None:
    """The compiled loop's float32 steps as numpy passes over one block: ``scaled`` gets t
    (clamped, before rounding), ``rounded`` rint(t) and ``dst`` that as its grey level."""
    low, high = (bound[: src.size].reshape(src.shape) for bound in bounds)
    np.subtract(src, offset, out=scaled, dtype=np.float32)
    np.multiply(scaled, scale, out=scaled)
    np.fmax(scaled, low, out=scaled)  # fmax/fmin drop NaN for the bound: NaN -> 0
    np.fmin(scaled, high, out=scaled)
    np.rint(scaled, out=rounded)  # round half to even
    np.copyto(dst, rounded, casting="unsafe")


def _quantise_block_float32(
    src: np.ndarray,
    dst: np.ndarray,
    lo: float,
    hi: float,
    top: float,
    constants: tuple[np.float32, np.float32, np.float32],
    bounds: tuple[np.ndarray, np.ndarray],
    buffers: tuple[np.ndarray, ...],
) -> None:
    """The float32 steps over one block, then the pixels within the tie margin
    (``_tie_margin``) again in float64."""
    offset, scale, margin = constants
    scaled, rounded, near = (buffer[: src.size].reshape(src.shape) for buffer in buffers)
    _float32_steps(src, dst, offset, scale, bounds, scaled, rounded)
    distance = np.abs(np.subtract(scaled, rounded, out=scaled), out=scaled)
    again = np.flatnonzero(np.greater_equal(distance, margin, out=near))  # one pass; boolean indexing takes two
    if again.size:
        x, exact = src.flat[again], np.empty(again.size, dst.dtype)
        _quantise_block_float64(x, exact, lo, hi, top, _bounds(np.dtype(np.float64), top), np.empty(again.size))
        dst.flat[again] = exact


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
