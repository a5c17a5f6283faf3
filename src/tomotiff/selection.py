"""Which images to take (the *selection* stage): the crop, the geometry of an N-D dataset, and
the set of images each output holds.

No I/O: a :class:`Selection` turns "images begin..stop along axis a" into HDF5 selections in
the dataset's own order and back into (image, row, column) views; an :class:`ImageSet` is
the immutable list of images an output holds, computed once by the plan.
"""

from dataclasses import dataclass

import numpy as np

from tomotiff.errors import TomotiffError
from tomotiff.keys import RawScan


@dataclass(frozen=True)
class Crop:
    """Pixels removed from each edge of every image (``--crop TOP BOTTOM LEFT RIGHT``)."""

    top: int = 0
    bottom: int = 0
    left: int = 0
    right: int = 0

    @property
    def margins(self) -> list[int]:
        """top, bottom, left, right (for the metadata)."""
        return [self.top, self.bottom, self.left, self.right]

    def rows(self, height: int) -> slice:
        return slice(self.top, height - self.bottom)

    def cols(self, width: int) -> slice:
        return slice(self.left, width - self.right)

    def check(self, height: int, width: int) -> "Crop":
        if min(self.top, self.bottom, self.left, self.right) < 0:
            raise TomotiffError(f"--crop margins must be >= 0, got {self.top} {self.bottom} {self.left} {self.right}")
        if self.top + self.bottom >= height or self.left + self.right >= width:
            raise TomotiffError(
                f"--crop {self.top} {self.bottom} {self.left} {self.right} leaves nothing of "
                f"{height} x {width} images; the margins must sum to less than the image size"
            )
        return self


@dataclass(frozen=True)
class Selection:
    shape: tuple[int, ...]
    axis: int
    begin: int
    stop: int
    rows_dim: int  # dataset dimension of the image rows
    cols_dim: int  # dataset dimension of the image columns
    crop: Crop = Crop()

    @property
    def count(self) -> int:
        return self.stop - self.begin

    @property
    def full_image_shape(self) -> tuple[int, int]:
        return self.shape[self.rows_dim], self.shape[self.cols_dim]

    @property
    def image_shape(self) -> tuple[int, int]:
        """The shape of each image once cropped."""
        height, width = self.full_image_shape
        return len(range(height)[self.crop.rows(height)]), len(range(width)[self.crop.cols(width)])

    def key(self, first: int, last: int, rows: slice = slice(None)) -> tuple[slice, ...]:
        """The HDF5 selection of images ``first..last-1`` (``rows`` of each cropped image), in dataset order."""
        height, width = self.full_image_shape
        cropped = range(height)[self.crop.rows(height)][rows]
        key = [slice(None)] * len(self.shape)
        key[self.axis] = slice(first, last)
        key[self.rows_dim] = slice(cropped.start, cropped.stop)
        key[self.cols_dim] = self.crop.cols(width)
        return tuple(key)

    def buffer_shape(self, first: int, last: int, rows: slice = slice(None)) -> tuple[int, ...]:
        """The shape ``key(first, last, rows)`` reads, in dataset order."""
        key = self.key(first, last, rows)
        return tuple(len(range(size)[part]) for size, part in zip(self.shape, key))

    def as_images(self, buffer: np.ndarray) -> np.ndarray:
        """View a buffer read with ``key`` as (image, row, column), without copying."""
        kept = sorted((self.axis, self.rows_dim, self.cols_dim))
        squeezed = buffer.reshape(tuple(buffer.shape[d] for d in kept))
        return np.moveaxis(squeezed, kept.index(self.axis), 0)


def select(
    shape: tuple[int, ...], axis: int, begin: int = 0, stop: int | None = None, crop: Crop = Crop()
) -> Selection:
    """Validate axis and range against ``shape`` and find the two image dimensions."""
    rank = len(shape)
    if rank < 3:
        raise TomotiffError(
            f"the dataset has rank {rank}, shape {tuple(shape)}; tomotiff reads stacks of images (numeric datasets "
            "of rank >= 3)"
        )
    if not 0 <= axis < rank:
        raise TomotiffError(f"-i/--axis {axis} is out of range for shape {tuple(shape)}: give 0..{rank - 1}")
    image_dims = _image_dims(shape, axis)
    length = shape[axis]
    if length == 0 or 0 in (shape[image_dims[0]], shape[image_dims[1]]):
        empty = f"no images along axis {axis}" if length == 0 else "its images have no rows or columns"
        raise TomotiffError(
            f"the dataset of shape {tuple(shape)} holds no pixels ({empty}); was it written by an "
            "aborted scan? choose another dataset with -d"
        )
    stop = length if stop is None else stop
    if not 0 <= begin < length:
        raise TomotiffError(f"-b/--begin {begin} is out of range: axis {axis} has {length} images (0..{length - 1})")
    if not begin < stop <= length:
        raise TomotiffError(
            f"-s/--stop {stop} is out of range: it must be in {begin + 1}..{length} "
            f"(axis {axis} has {length} images; stop is exclusive)"
        )
    crop.check(shape[image_dims[0]], shape[image_dims[1]])
    return Selection(tuple(shape), axis, begin, stop, *image_dims, crop)


def _image_dims(shape: tuple[int, ...], axis: int) -> tuple[int, int]:
    """The two dimensions left after the index axis, once extra singleton dimensions are dropped."""
    others = [d for d in range(len(shape)) if d != axis]
    while len(others) > 2:
        singleton = next((d for d in others if shape[d] == 1), None)
        if singleton is None:
            raise TomotiffError(
                f"shape {tuple(shape)} with image axis {axis} leaves non-singleton extra dimensions "
                f"{tuple(shape[d] for d in others)}: only singleton dimensions can be squeezed; check -i/--axis"
            )
        others.remove(singleton)
    return others[0], others[1]


@dataclass(frozen=True, eq=False)
class ImageSet:
    """The images one output holds (ascending indices of the source, read-only), their kind when
    a raw scan is split by key, and the scan's keys, recorded with every image written."""

    indices: np.ndarray
    kind: str | None = None
    keys: RawScan | None = None

    def __post_init__(self) -> None:
        indices = np.array(self.indices, np.int64)  # a copy, so no caller can change it later
        indices.flags.writeable = False
        object.__setattr__(self, "indices", indices)

    @property
    def first(self) -> int:
        return int(self.indices[0])

    @property
    def last(self) -> int:
        return int(self.indices[-1])

    def origin(self, index: int) -> dict:
        """What the plan knows of image ``index`` beyond the source: its image_key."""
        return {} if self.keys is None else {"image_key": self.keys.key(index)}
