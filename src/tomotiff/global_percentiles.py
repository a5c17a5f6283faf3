"""The exact percentiles behind the global window (``--window global``): percentiles of every
finite pixel of a stream of arrays too large to hold, read a few times with bounded memory.

Pure computation: the window stage (:mod:`tomotiff.window`) supplies the passes over the
pixels (the engine's read stream) and the progress display.

The result is **exact**: ``lo`` and ``hi`` equal ``np.percentile(v, [P, 100 - P])`` (numpy's
default, linear method) where ``v`` holds every finite pixel of the selected (or sampled)
images converted to float64, the same definition as a reference window uses for one image.
No estimate or tolerance is involved, so the error is zero, far below one grey level.

Method: a streaming radix selection on the pixels' bit patterns. Every real dtype has an
order-preserving map to unsigned integers of its width (floats: flip the sign bit, or all
bits of negative values; signed integers: flip the sign bit), so the k-th smallest value is
found digit by digit, 16 bits a pass:

* pass 1 counts the top 16 bits of every pixel (65536 bins). The bins of NaN and +-Inf are
  recognisable from the exponent bits and dropped, which gives the number of finite pixels
  and the ranks numpy interpolates between; for 8- and 16-bit types the bins are single
  values and the result is complete after this one pass;
* each further pass reads the data again but keeps only the pixels in the (at most four)
  bins that hold the wanted ranks, and either counts their next 16 bits or, once a bin holds
  few enough pixels (``COLLECT_LIMIT``), collects and sorts them. 32-bit types (float32,
  int32, uint32) finish in exactly two passes; float64 and 64-bit integers in two unless a
  wanted bin holds more than ``COLLECT_LIMIT`` pixels, and never more than four.

Memory: one read tile (the source's), one work block of ``BLOCK_ELEMENTS`` pixels, a few
65536-bin count arrays and at most four collected bins of ``COLLECT_LIMIT`` values each;
never anything the size of the volume.
"""

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from tomotiff.errors import TomotiffError

DIGIT_BITS = 16  # bits resolved per pass: 65536 bins
BLOCK_ELEMENTS = 1 << 18  # pixels per work block: the buffers stay in cache
COLLECT_LIMIT = 1 << 21  # a wanted bin with at most this many pixels is collected and sorted

Passes = Callable[[], Iterable[np.ndarray]]  # each call: one pass over every pixel, as arrays of any shape


@dataclass(frozen=True)
class _Keys:
    """The order-preserving map between a dtype's bit patterns (``raw``) and unsigned keys."""

    dtype: np.dtype
    bits: int
    kind: str  # "f" float, "i" signed integer, "u" unsigned integer or bool
    raw_type: np.dtype
    exponent_bits: int = 0

    @classmethod
    def of(cls, dtype: np.dtype) -> "_Keys":
        dtype = np.dtype(dtype)
        if dtype.kind not in "uifb":
            raise TomotiffError(f"images of type {dtype} have no intensity percentiles; give --lo/--hi")
        bits = dtype.itemsize * 8
        kind = "u" if dtype.kind == "b" else dtype.kind
        exponent = {16: 5, 32: 8, 64: 11}.get(bits, 0) if kind == "f" else 0
        if kind == "f" and not exponent:
            raise TomotiffError(f"images of type {dtype} are not supported by --window global; give --lo/--hi")
        return cls(dtype, bits, kind, np.dtype(f"u{dtype.itemsize}"), exponent)

    def raw(self, pixels: np.ndarray) -> np.ndarray:
        """The pixels' bit patterns, as a view (any strides)."""
        return pixels.view(self.raw_type)

    def prefix_key(self, raw_prefix, depth: int):
        """Key prefix of the raw prefix (top ``depth`` bits); works on ints and integer arrays."""
        sign, every = 1 << (depth - 1), (1 << depth) - 1
        if self.kind == "u":
            return raw_prefix
        if self.kind == "i":
            return raw_prefix ^ sign
        negative = (raw_prefix >> (depth - 1)) & 1
        return raw_prefix ^ (negative * (every ^ sign) + sign)

    def prefix_raw(self, key_prefix: int, depth: int) -> int:
        """Raw prefix of the key prefix (the inverse of :meth:`prefix_key`)."""
        sign, every = 1 << (depth - 1), (1 << depth) - 1
        if self.kind == "u":
            return key_prefix
        if self.kind == "i":
            return key_prefix ^ sign
        return key_prefix ^ (sign if key_prefix >> (depth - 1) else every)

    def keys(self, raw: np.ndarray) -> np.ndarray:
        """Full keys of a (small, 1-D) array of raw values."""
        if self.kind == "u":
            return raw
        sign = self.raw_type.type(1 << (self.bits - 1))
        if self.kind == "i":
            return raw ^ sign
        every = self.raw_type.type((1 << self.bits) - 1)
        return raw ^ np.where(raw >> self.raw_type.type(self.bits - 1), every, sign)

    def value(self, key: int) -> float:
        """The pixel value (as float64) whose key is ``key``."""
        raw = np.array([self.prefix_raw(int(key), self.bits)], self.raw_type)
        return float(raw.view(self.dtype)[0])

    def nonfinite_raw_bins(self, depth: int) -> np.ndarray:
        """Which raw prefixes of ``depth`` bits are NaN or +-Inf (exponent all ones)."""
        prefixes = np.arange(1 << depth)
        if self.kind != "f":
            return np.zeros(prefixes.size, bool)
        ones = (1 << self.exponent_bits) - 1
        return (prefixes >> (depth - 1 - self.exponent_bits)) & ones == ones


@dataclass
class _Bin:
    """A set of keys sharing their top ``depth`` bits, holding some wanted ranks."""

    prefix: int
    depth: int
    count: int
    ranks: dict[int, int]  # rank among all finite pixels -> rank inside this bin
    digit: int = 0  # bits counted in the next pass; 0 = collect the keys instead
    counts: np.ndarray | None = None
    collected: list[np.ndarray] = field(default_factory=list)
    raw_prefix: int = 0


def exact_percentiles(dtype: np.dtype, passes: Passes, percent: float, what: str) -> tuple[float, float]:
    """The ``percent`` and ``100 - percent`` percentiles of every finite pixel that ``passes()``
    yields (each call must yield the same pixels again, as arrays of ``dtype``).

    Exact: equal to ``np.percentile(v, [percent, 100 - percent])`` (linear method) over the
    finite pixels ``v`` as float64; NaN and +-Inf are ignored. One pass for 8/16-bit types,
    two for 32-bit types, two (at most four) for 64-bit types; see the module doc.
    ``what`` names the pixels in messages ("the 25 selected images (3..27)").
    Raises :class:`TomotiffError` when no pixel is finite or lo == hi (a constant volume).
    """
    keys = _Keys.of(dtype)
    scan = _Scan(passes, keys, what)
    counts = scan.first_pass()
    total = int(counts.sum())
    if total == 0:
        raise TomotiffError(f"{what} have no finite pixels; give the window with --lo/--hi")
    previous, following, gamma = _interpolation(total, percent)
    ranks = sorted({*previous.tolist(), *following.tolist()})
    values = scan.select(counts, ranks)
    lo, hi = _lerp(np.array([values[int(r)] for r in previous]), np.array([values[int(r)] for r in following]), gamma)
    lo, hi = float(lo), float(hi)
    if not hi > lo:
        raise TomotiffError(
            f"{what} give an empty global window (lo = hi = {lo!r}, -p {percent:g}): "
            "they are constant, or nearly all one value; give --lo/--hi explicitly"
        )
    return lo, hi


def _interpolation(total: int, percent: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """numpy's linear method for ``total`` sorted values: the ranks to interpolate between and
    the weights, computed with the same float64 operations as ``np.percentile``."""
    quantiles = np.true_divide([percent, 100 - percent], 100)
    virtual = (total - 1) * quantiles
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= total - 1
    previous[above] = -1
    following[above] = -1
    gamma = np.asanyarray(virtual - previous, dtype=virtual.dtype)
    previous, following = previous.astype(np.intp), following.astype(np.intp)
    return np.where(previous < 0, total - 1, previous), np.where(following < 0, total - 1, following), gamma


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """numpy's ``_lerp`` (the percentile interpolation), for bit-identical results."""
    diff = b - a
    result = np.add(a, diff * t)
    np.subtract(b, diff * (1 - t), out=result, where=t >= 0.5)
    return result


class _Scan:
    """The passes over the pixels."""

    def __init__(self, passes: Passes, keys: _Keys, what: str):
        self.passes, self.keys, self.what = passes, keys, what
        self.index = np.empty(BLOCK_ELEMENTS, np.intp)
        self.shifted = np.empty(BLOCK_ELEMENTS, keys.raw_type)
        self.mask = np.empty(BLOCK_ELEMENTS, bool)

    def first_pass(self) -> np.ndarray:
        """Counts of the top DIGIT_BITS (or all) bits of every finite pixel's key."""
        depth = min(DIGIT_BITS, self.keys.bits)
        shift = self.keys.bits - depth
        raw_counts = np.zeros(1 << depth, np.int64)
        for raw in self._blocks():
            index = self.index[: raw.size].reshape(raw.shape)
            np.right_shift(raw, shift, out=index, casting="unsafe")
            raw_counts += np.bincount(index.reshape(-1), minlength=1 << depth)
        raw_counts[self.keys.nonfinite_raw_bins(depth)] = 0
        counts = np.empty_like(raw_counts)
        counts[self.keys.prefix_key(np.arange(1 << depth), depth)] = raw_counts
        return counts

    def select(self, counts: np.ndarray, ranks: list[int]) -> dict[int, float]:
        """The values of the given ranks (0 = smallest finite pixel), as float64."""
        found: dict[int, float] = {}
        bins = _split(0, 0, counts, {rank: rank for rank in ranks})
        while bins:
            pending = []
            for part in bins:
                if part.depth == self.keys.bits:
                    found.update({rank: self.keys.value(part.prefix) for rank in part.ranks})
                    continue
                remaining = self.keys.bits - part.depth
                part.digit = min(DIGIT_BITS, remaining) if remaining <= DIGIT_BITS or part.count > COLLECT_LIMIT else 0
                part.counts = np.zeros(1 << part.digit, np.int64) if part.digit else None
                part.raw_prefix = self.keys.prefix_raw(part.prefix, part.depth)
                pending.append(part)
            if not pending:
                break
            self._refine_pass(pending)
            bins = []
            for part in pending:
                if part.digit:
                    bins += _split(part.prefix, part.depth, part.counts, part.ranks)
                    continue
                collected = np.sort(np.concatenate(part.collected))
                found.update({rank: self.keys.value(collected[inside]) for rank, inside in part.ranks.items()})
        return found

    def _refine_pass(self, bins: list[_Bin]) -> None:
        """One read: feed each bin the keys of the pixels whose top bits are its prefix."""
        keys, bits = self.keys, self.keys.bits
        for raw in self._blocks():
            shifted = self.shifted[: raw.size].reshape(raw.shape)
            mask = self.mask[: raw.size].reshape(raw.shape)
            depth = None
            for part in bins:
                if part.depth != depth:
                    depth = part.depth
                    np.right_shift(raw, keys.raw_type.type(bits - depth), out=shifted)
                np.equal(shifted, keys.raw_type.type(part.raw_prefix), out=mask)
                chosen = raw[mask]
                if not chosen.size:
                    continue
                chosen = keys.keys(chosen)
                if part.digit:
                    low = bits - part.depth - part.digit
                    digits = (chosen >> keys.raw_type.type(low)) & keys.raw_type.type((1 << part.digit) - 1)
                    part.counts += np.bincount(digits.astype(np.intp), minlength=1 << part.digit)
                else:
                    part.collected.append(chosen)
        for part in bins:
            got = int(part.counts.sum()) if part.digit else sum(c.size for c in part.collected)
            if got != part.count:
                raise TomotiffError(
                    f"{self.what} changed while the global window was computed "
                    f"(a bin held {part.count} pixels, then {got}); is the input still being written?"
                )

    def _blocks(self) -> Iterator[np.ndarray]:
        """Every pixel once, as raw views of at most BLOCK_ELEMENTS."""
        for pixels in self.passes():
            yield from _pieces(self.keys.raw(pixels))


def _split(prefix: int, depth: int, counts: np.ndarray, ranks: dict[int, int]) -> list[_Bin]:
    """The bins one digit deeper (``counts`` per digit value) that hold the wanted ranks."""
    digit = int(counts.size).bit_length() - 1
    cumulative = np.cumsum(counts)
    bins: dict[int, _Bin] = {}
    for rank, inside in ranks.items():
        value = int(np.searchsorted(cumulative, inside, side="right"))
        below = int(cumulative[value - 1]) if value else 0
        part = bins.setdefault(value, _Bin((prefix << digit) | value, depth + digit, int(counts[value]), {}))
        part.ranks[rank] = inside - below
    return list(bins.values())


def _pieces(array: np.ndarray) -> Iterator[np.ndarray]:
    """Views covering every element of ``array`` once (in any order), each of at most
    BLOCK_ELEMENTS elements, without copying."""
    if array.size == 0:
        return
    order = sorted(range(array.ndim), key=lambda axis: -abs(array.strides[axis]))
    array = array.transpose(order)
    if array.flags.c_contiguous or array.ndim == 1:
        flat = array.reshape(-1) if array.ndim > 1 else array
        for start in range(0, flat.size, BLOCK_ELEMENTS):
            yield flat[start : start + BLOCK_ELEMENTS]
        return
    if array.size <= BLOCK_ELEMENTS:
        yield array
        return
    inner = array[0].size
    if inner > BLOCK_ELEMENTS:
        for part in array:
            yield from _pieces(part)
        return
    step = BLOCK_ELEMENTS // inner
    for start in range(0, array.shape[0], step):
        yield array[start : start + step]
