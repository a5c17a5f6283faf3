"""Which pixels a percentile window looks at (``--mask circle``, ``--mask-value V``; issue 16).

A parallel-beam reconstruction has a circular field of view: the corners outside it hold zeros
or reconstruction garbage, and padding (0, or NaN-filled borders) fills whole rows. Such pixels
pull a reference image's or the global window's percentiles away from the sample. The mask
keeps only the pixels whose centres lie inside the largest circle centred in the (cropped)
image, and leaves out pixels equal to given values. It only chooses the window: every pixel is
still written, and the images keep their size.
"""

import functools
import math
from dataclasses import dataclass

import numpy as np

from tomotiff.errors import TomotiffError


@dataclass(frozen=True)
class Mask:
    """``circle``: only pixels whose centres lie within ``min(height, width) / 2`` of the image's
    centre; ``values``: pixels equal to any of these are left out (NaN matches NaN pixels, which
    percentiles leave out anyway)."""

    circle: bool = False
    values: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in self.values):
            raise TomotiffError(f"--mask-value takes numbers (or nan), got {list(self.values)!r}")

    @classmethod
    def of(cls, shape: str | None, values) -> "Mask | None":
        """The mask the options (or the workflow's ``mask`` and ``mask_values``) ask for, or None."""
        if shape not in (None, "circle"):
            raise TomotiffError(f"--mask takes circle, not {shape!r}")
        parsed = tuple(parse_value(v) for v in values or ())
        return cls(shape == "circle", parsed) if shape or parsed else None

    def as_dict(self) -> dict:
        """For the metadata, the manifest and stats.json (NaN as the string "nan": JSON has none)."""
        return {"circle": self.circle, "values": [v if not math.isnan(v) else "nan" for v in self.values]}

    def describe(self) -> str:
        """ ", inside the field-of-view circle, leaving out 0 and nan", for the window's line."""
        parts = ["inside the field-of-view circle"] if self.circle else []
        if self.values:
            parts.append("leaving out " + " and ".join(f"{v:g}" for v in self.values))
        return ", " + ", ".join(parts)

    def select(self, tile: np.ndarray, rows: slice = slice(None), image_shape: tuple[int, int] | None = None):
        """The pixels of ``tile`` (images, rows, columns: rows ``rows`` of images of
        ``image_shape``, default the tile's own) that the window looks at, as a new array."""
        tile = np.asarray(tile)
        if self.circle:
            tile = tile[:, disc(tuple(image_shape or tile.shape[1:]))[rows]]
        if not self.values:
            return tile
        left_out = np.zeros(tile.shape, bool)
        for value in self.values:
            left_out |= np.isnan(tile) if math.isnan(value) else tile == value
        return tile[~left_out]


def parse_value(value) -> float:
    """A --mask-value: a number, or nan (for NaN-filled borders)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TomotiffError(f"--mask-value takes a number or nan, not {value!r}") from None


@functools.lru_cache(maxsize=4)
def disc(shape: tuple[int, int]) -> np.ndarray:
    """The field of view of an image of ``shape``: True where a pixel's centre lies within
    ``min(height, width) / 2`` of the image's centre (read-only, shared by every caller)."""
    height, width = shape
    radius = min(height, width) / 2
    y = np.arange(height)[:, None] - (height - 1) / 2
    x = np.arange(width)[None, :] - (width - 1) / 2
    inside = y * y + x * x <= radius * radius
    inside.flags.writeable = False
    return inside
