"""A multi-page TIFF read as a sequence of images numbered by page (the *source* stage for
``tiff2tiffux STACK.tif``): ImageJ stacks and hyperstacks with one channel and one frame,
tifffile stacks, BigTIFF, and ImageJ's own contiguous format past 4 GiB."""

import os
import threading
from collections.abc import Iterator

import numpy as np
import tifffile

from tomotiff.buffers import scratch
from tomotiff.errors import TomotiffError
from tomotiff.files import check_input_file
from tomotiff.selection import Crop
from tomotiff.source import _TIFFFILE_WARNINGS, TiffSource


class TiffStackSource(TiffSource):
    """Pages begin..stop-1 of one multi-page TIFF (its first series), each cropped by ``crop``."""

    def __init__(self, path: str, begin: int = 0, stop: int | None = None, crop: Crop = Crop()):
        self.path = path
        check_input_file(path, "tiff2tiffux reads a directory of TIFFs or one multi-page TIFF")
        self._tif = self._open(path)
        series = self._tif.series[0]
        shape = tuple(n for n, axis in zip(series.shape, series.axes) if axis not in "YX" and n > 1)
        if len(shape) > 1 or series.dtype.kind not in "uifb" or len(series.shape) - series.shape.count(1) > 3:
            self._tif.close()
            raise TomotiffError(
                f"{path} holds {series.axes} {series.shape} {series.dtype}; tiff2tiffux reads stacks of "
                "single-channel numeric images (one channel, one frame)"
            )
        self.length = shape[0] if shape else 1
        self.full_shape = (series.shape[series.axes.index("Y")], series.shape[series.axes.index("X")])
        self.dtype = np.dtype(series.dtype).newbyteorder("=")
        stop = self.length if stop is None else stop
        if not 0 <= begin < self.length or not begin < stop <= self.length:
            self._tif.close()
            raise TomotiffError(
                f"-b/--begin {begin} -s/--stop {stop}: {path} has {self.length} pages "
                f"(0..{self.length - 1}; stop is exclusive)"
            )
        self.begin, self.stop = begin, stop
        self.crop = crop.check(*self.full_shape)
        self._rows, self._cols = crop.rows(self.full_shape[0]), crop.cols(self.full_shape[1])
        self.image_shape = (len(range(self.full_shape[0])[self._rows]), len(range(self.full_shape[1])[self._cols]))
        self._lock = threading.Lock()  # one file handle: pages are read one at a time

    @staticmethod
    def _open(path: str) -> tifffile.TiffFile:
        """The file open, once it is known to be whole: its pages all there (tifffile warns, and
        reads fewer, where an IFD chain is cut) and every page's data inside the file, so that a
        damaged stack fails now, in one line, not half-way through writing."""
        with _TIFFFILE_WARNINGS.catching() as caught:
            try:
                with tifffile.TiffFile(path) as tif:
                    size = os.path.getsize(path)
                    for page in tif.pages:
                        ends = [offset + count for offset, count in zip(page.dataoffsets, page.databytecounts)]
                        if ends and max(ends) > size:
                            raise TomotiffError(
                                f"{path} is truncated: its image data end at byte {max(ends)}, the "
                                f"file at {size}; copy it again"
                            )
                    tif.series[0].shape  # noqa: B018 (reads the series: ImageJ's, tifffile's or the pages')
            except (TomotiffError, MemoryError):
                raise
            except Exception as exc:  # a damaged file makes tifffile raise nearly anything
                raise TomotiffError(
                    f"cannot read {path}: {str(exc).splitlines()[0]}; the file is damaged or not a TIFF, copy it again"
                ) from None
        if caught:
            raise TomotiffError(f"{path} is damaged or truncated (tifffile: {caught[0]}); copy it again")
        return tifffile.TiffFile(path)

    def read_tiles(self, first: int, last: int, row_multiple: int = 1) -> Iterator[tuple[slice, np.ndarray]]:
        buffer = scratch("read", (last - first, *self.full_shape), self.dtype)
        for offset in range(last - first):
            buffer[offset] = self._page(first + offset)
        yield slice(None), buffer[:, self._rows, self._cols]

    def read_image(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise TomotiffError(
                f"reference image -r {index} does not exist: {self.path} has {self.length} pages (0..{self.length - 1})"
            )
        return np.array(self._page(index)[self._rows, self._cols])

    def _page(self, index: int) -> np.ndarray:
        try:
            with self._lock:
                return self._tif.series[0].asarray(key=index).reshape(self.full_shape)
        except MemoryError:
            raise
        except Exception as exc:  # a damaged page makes tifffile and its codecs raise nearly anything
            raise TomotiffError(
                f"cannot read page {index} of {self.path}: {str(exc).splitlines()[0]}; the file is "
                "damaged, copy it again"
            ) from None

    def describe(self) -> dict:
        return {"source": os.path.abspath(self.path), "input_pages": self.length, "crop": self.crop.margins}

    def image_origin(self, index: int) -> dict:
        return {"input_page": index}

    def close(self) -> None:
        self._tif.close()
