"""Mean binning of images (``--bin 2|4``), applied before quantisation for quick-look images."""

import numpy as np

from tomotiff.dtypes import float32_holds
from tomotiff.errors import TomotiffError

FACTORS = (1, 2, 4)


def check_factor(factor: int, image_shape: tuple[int, int]) -> int:
    """A binning factor of 1 (none), 2 or 4 that fits the image."""
    if factor not in FACTORS:
        raise TomotiffError(f"--bin must be 2 or 4, got {factor}")
    if min(image_shape) < factor:
        raise TomotiffError(f"--bin {factor} does not fit {image_shape[0]} x {image_shape[1]} images")
    return factor


def binned_shape(image_shape: tuple[int, int], factor: int) -> tuple[int, int]:
    """Rows and columns left over at the bottom and right (fewer than ``factor``) are dropped."""
    return image_shape[0] // factor, image_shape[1] // factor


def bin_mean(tiles: np.ndarray, factor: int) -> np.ndarray:
    """The mean of each ``factor`` x ``factor`` block of every image in (n, rows, cols) ``tiles``.

    Computed in float32 for inputs float32 represents exactly (8/16-bit integers,
    float16/32), else in float64, so binning adds no rounding of its own to speak of.
    """
    n, rows, cols = tiles.shape
    rows, cols = rows // factor, cols // factor
    blocks = tiles[:, : rows * factor, : cols * factor].reshape(n, rows, factor, cols, factor)
    return blocks.mean(axis=(2, 4), dtype=np.float32 if float32_holds(tiles.dtype) else np.float64)
