"""What happens to each pixel on its way to a file (the per-tile *convert* stage): kept as read,
widened to float32, or quantised through a window.

Each conversion is a small immutable value the engine calls per tile; the manifest records
its ``describe()``.
"""

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from tomotiff.errors import TomotiffError
from tomotiff.quantisation import FORMULA, FORMULA_NAME, INVERSE, convert, output_dtype, quantise
from tomotiff.window import Window, advice

CROWDING_WARNING_FRACTION = 0.99  # of an image's finite pixels on two grey levels: its window is too wide


class Conversion(Protocol):
    name: str  # the output's short name: u8, u16, f32, or keep

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        """The output pixels' type for input pixels of ``in_dtype``."""

    def writes_as_read(self, in_dtype: np.dtype) -> bool:
        """The pixels are written exactly as read (the engine then skips the copy)."""

    def apply(self, tile: np.ndarray, out: np.ndarray) -> np.ndarray | None:
        """Fill ``out`` (``out_dtype``) from ``tile`` (same shape: images, rows, columns); return the
        clipping tallies of each image's part (int64 (images, 3): at 0, at the top, NaN), or None
        when nothing is clipped (values kept)."""

    def describe(self) -> dict:
        """bits, lo, hi and the formula, for the metadata and manifest."""


@dataclass(frozen=True)
class Keep:
    """nxs2tiff: the data type as stored (binned means of integers are rounded back to it)."""

    name = "keep"

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        return np.dtype(in_dtype)

    def writes_as_read(self, in_dtype: np.dtype) -> bool:
        return True

    def apply(self, tile: np.ndarray, out: np.ndarray) -> None:
        convert(tile, out)
        return None

    def describe(self) -> dict:
        return {"bits": None, "lo": None, "hi": None, "formula": "unchanged"}


@dataclass(frozen=True)
class ToFloat32:
    """nxs2tiff --fp and the workflow's 32-bit output: the values as float32."""

    name = "f32"

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        return np.dtype(np.float32)

    def writes_as_read(self, in_dtype: np.dtype) -> bool:
        return np.dtype(in_dtype) == np.float32

    def apply(self, tile: np.ndarray, out: np.ndarray) -> None:
        convert(tile, out)
        return None

    def describe(self) -> dict:
        return {"bits": None, "lo": None, "hi": None, "formula": "float32(x)"}


@dataclass(frozen=True)
class Quantise:
    """nxs2tiffux/tiff2tiffux: ``bits``-deep unsigned integers through ``window`` (FORMULA)."""

    bits: int
    window: Window

    def __post_init__(self) -> None:
        output_dtype(self.bits)  # 8 or 16, or a one-line error

    @property
    def name(self) -> str:
        return f"u{self.bits}"

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        return output_dtype(self.bits)

    def writes_as_read(self, in_dtype: np.dtype) -> bool:
        return False

    def apply(self, tile: np.ndarray, out: np.ndarray) -> np.ndarray:
        counts = np.zeros((len(tile), 3), np.int64)
        for image, written, tally in zip(tile, out, counts):  # one image's tallies per call
            quantise(image, self.window.lo, self.window.hi, self.bits, out=written, counts=tally)
        return counts

    def describe(self) -> dict:
        return {
            "bits": self.bits,
            "lo": self.window.lo,
            "hi": self.window.hi,
            "formula": FORMULA,
            "formula_name": FORMULA_NAME,
            "inverse": INVERSE,
            "window": self.window.as_dict(),
        }


def keep_conversion(dtype: np.dtype, fp: bool) -> Keep | ToFloat32:
    """nxs2tiff: floating-point data is written only when asked with --fp (as the beamline page says)."""
    if fp:
        return ToFloat32()
    if np.dtype(dtype).kind == "f":
        raise TomotiffError(
            f"the data are floating point ({np.dtype(dtype)}): add --fp to write float32 TIFFs, "
            "or use nxs2tiffux to reduce them to 8 or 16 bits"
        )
    return Keep()


def crowding_warning(image: np.ndarray, window: Window, bits: int, index: int) -> str | None:
    """A warning when the window puts nearly all of ``image``'s finite pixels on one or two grey
    levels (e.g. ``-p 0`` and one outlier pixel of 1e14 among values of order 1): every image
    would look uniform."""
    image = np.asarray(image)
    finite = np.isfinite(image) if image.dtype.kind == "f" else np.ones(image.shape, bool)
    count = int(np.count_nonzero(finite))
    if count == 0:
        return None
    levels = np.bincount(quantise(image, window.lo, window.hi, bits)[finite].ravel(), minlength=2)
    busiest = np.argsort(levels)[-2:][::-1]
    share = float(levels[busiest].sum()) / count
    if share < CROWDING_WARNING_FRACTION:
        return None
    return (
        f"warning: the window lo={window.lo!r} hi={window.hi!r} puts {share:.2%} of image {index}'s pixels on "
        f"grey levels {' and '.join(str(int(level)) for level in sorted(busiest))} of 0..{2**bits - 1}: the "
        f"images will look uniform (an outlier stretches the window?); {advice(window)}"
    )
