"""Which images to take from an N-D dataset: the index axis, the range, and the squeeze.

Pure geometry, no I/O: a :class:`Selection` turns "images begin..stop along axis a" into
HDF5 selections in the dataset's own order and back into (image, row, column) views.
"""

from dataclasses import dataclass

import numpy as np

from tomotiff.errors import TomotiffError


@dataclass(frozen=True)
class Selection:
    shape: tuple[int, ...]
    axis: int
    begin: int
    stop: int
    rows_dim: int  # dataset dimension of the image rows
    cols_dim: int  # dataset dimension of the image columns

    @property
    def count(self) -> int:
        return self.stop - self.begin

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.shape[self.rows_dim], self.shape[self.cols_dim]

    def key(self, first: int, last: int, rows: slice = slice(None)) -> tuple[slice, ...]:
        """The HDF5 selection of images ``first..last-1`` (and ``rows`` of each), in dataset order."""
        key = [slice(None)] * len(self.shape)
        key[self.axis] = slice(first, last)
        key[self.rows_dim] = rows
        return tuple(key)

    def buffer_shape(self, first: int, last: int, rows: slice = slice(None)) -> tuple[int, ...]:
        """The shape ``key(first, last, rows)`` reads, in dataset order."""
        shape = list(self.shape)
        shape[self.axis] = last - first
        shape[self.rows_dim] = len(range(*rows.indices(self.shape[self.rows_dim])))
        return tuple(shape)

    def as_images(self, buffer: np.ndarray) -> np.ndarray:
        """View a buffer read with ``key`` as (image, row, column), without copying."""
        kept = sorted((self.axis, self.rows_dim, self.cols_dim))
        squeezed = buffer.reshape(tuple(buffer.shape[d] for d in kept))
        return np.moveaxis(squeezed, kept.index(self.axis), 0)


def select(shape: tuple[int, ...], axis: int, begin: int = 0, stop: int | None = None) -> Selection:
    """Validate axis and range against ``shape`` and find the two image dimensions."""
    rank = len(shape)
    if rank < 3:
        raise TomotiffError(
            f"the dataset has rank {rank}, shape {tuple(shape)}; tomotiff needs a stack of images (rank >= 3)"
        )
    if not 0 <= axis < rank:
        raise TomotiffError(f"-i/--axis {axis} is out of range for shape {tuple(shape)}: give 0..{rank - 1}")
    image_dims = _image_dims(shape, axis)
    length = shape[axis]
    stop = length if stop is None else stop
    if not 0 <= begin < length:
        raise TomotiffError(f"-b/--begin {begin} is out of range: axis {axis} has {length} images (0..{length - 1})")
    if not begin < stop <= length:
        raise TomotiffError(
            f"-s/--stop {stop} is out of range: it must be in {begin + 1}..{length} "
            f"(axis {axis} has {length} images; stop is exclusive)"
        )
    return Selection(tuple(shape), axis, begin, stop, *image_dims)


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
