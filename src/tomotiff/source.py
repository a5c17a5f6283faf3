"""Where images come from (the *source* stage): an HDF5 dataset or a directory of TIFFs.

Both are opened lazily and read in blocks of whole images aligned to the storage layout
(HDF5 chunks along the image axis), split into row tiles of bounded size, so memory stays
small and no chunk is decoded twice.
"""

import logging
import math
import mmap
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import numpy as np
import tifffile

from tomotiff import hdf5
from tomotiff.buffers import scratch
from tomotiff.calibration import PixelSize, pixel_size_in_file
from tomotiff.errors import TomotiffError
from tomotiff.files import check_input_file
from tomotiff.keys import RawScan, raw_scan
from tomotiff.pattern import check_pattern, format_name, pattern_index
from tomotiff.selection import Crop, Selection, select

TILE_BYTES = 32 << 20  # one read; a few of these per worker bound the memory
# Unfiltered chunks stay with h5py: it copies them faster than per-chunk reads do on a few cores
# (measured: case A, 32^3 float32 chunks, 1.8x slower through tomotiff.chunks with -j 2 on 2 cores).
READ_UNFILTERED_CHUNKS = False


class Source(Protocol):
    """What the pipeline needs of any source of images (an HDF5 dataset, a TIFF directory; a
    Zarr or EDF source would implement exactly this). Sources are read-only and never change
    after opening: which images are processed is the plan's business, passed to each call.
    Use a source as a context manager, or call :meth:`close`."""

    dtype: np.dtype  # the pixels' type, native byte order
    image_shape: tuple[int, int]  # rows, columns of every image once cropped
    begin: int  # the range asked for (-b/-s): images begin..stop-1, all of which exist
    stop: int
    chunk_depth: int  # images per storage unit along the index (reading one image of it costs all)
    read_path: str  # how pixels are read, for the log line (e.g. chunks decoded by the workers, or h5py)

    def blocks(self, indices: np.ndarray) -> list[tuple[int, int]]:
        """(first, last) ranges, exclusive, covering exactly the ascending ``indices``: each a run of
        consecutive images aligned to the storage layout, small enough that a worker holds a few."""

    def read_tiles(self, first: int, last: int, row_multiple: int = 1) -> Iterator[tuple[slice, np.ndarray]]:
        """Images first..last-1 as (rows, tile): ``tile`` an (image, row, column) view of those rows
        of every image, rows a multiple of ``row_multiple`` except at the bottom; valid until the
        next tile (buffers are reused)."""

    def read_image(self, index: int) -> np.ndarray:
        """One cropped image as a new array (a reference image); any index of the source."""

    def release(self, first: int, last: int) -> None:
        """Images first..last-1 are done: drop what the source holds of them (e.g. mapped pages)."""

    def image_keys(self, path: str | None, required: bool) -> RawScan | None:
        """The raw scan's image_key (at ``path``, or found by itself), None for data without keys;
        ``required``: their absence is an error."""

    def notes(self) -> list[str]:
        """Warnings about the source the user should read (e.g. files beyond a gap in the numbering)."""

    def pixel_size(self) -> tuple[PixelSize | None, str | None]:
        """The pixel size the source records, or None and why not (None, None: it records none)."""

    def value_unit(self) -> str | None:
        """The unit of the pixel values (e.g. an HDF5 dataset's ``units``), if recorded."""

    def describe(self) -> dict:
        """Where the images come from, for the metadata and manifest (JSON-able)."""

    def image_origin(self, index: int) -> dict:
        """What identifies image ``index`` in the source besides its index (e.g. its input file)."""

    def close(self) -> None: ...

    def __enter__(self) -> "Source": ...

    def __exit__(self, *exc) -> None: ...


class _Closing:
    """Context-manager methods for sources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _even_blocks(begin: int, stop: int, align: int, depth: int) -> list[tuple[int, int]]:
    """Split begin..stop into blocks of ``depth`` images (a multiple of ``align``) that start on
    multiples of ``align``; only the first block may be short, to reach the first boundary."""
    start = begin if begin % align == 0 else min((begin // align + 1) * align, stop)
    bounds = [begin, start, *range(start + depth, stop, depth), stop]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]


def _blocks_of(indices: np.ndarray, align: int, depth: int) -> list[tuple[int, int]]:
    """Blocks covering ``indices``: each run of consecutive indices split by ``_even_blocks``."""
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    runs = np.split(indices, breaks)
    return [block for run in runs if run.size for block in _even_blocks(int(run[0]), int(run[-1]) + 1, align, depth)]


# What h5py raises for damaged metadata (a flipped byte in a B-tree, a heap, a name): HDF5's message
# as OSError, RuntimeError or KeyError, or a name that is not UTF-8.
_DAMAGED_HDF5 = (OSError, RuntimeError, KeyError, UnicodeError)


def _first_line(exc: BaseException) -> str:
    """An exception's message, unquoted (KeyError quotes it) and cut to its first line."""
    return str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc).splitlines()[0]


class Hdf5Source(_Closing):
    """Images along ``axis`` of an HDF5 dataset, read into reused buffers: memory-mapped when the
    dataset is contiguous and unfiltered, chunk by chunk by :mod:`tomotiff.chunks` outside h5py's
    lock where it decodes the filters, else with h5py's ``read_direct`` (``read_path`` says which)."""

    def __init__(
        self,
        path: str,
        dataset: str | None,
        axis: int = 0,
        begin: int = 0,
        stop: int | None = None,
        crop: Crop = Crop(),
    ):
        self.path = path
        self.file = hdf5.open_file(path)
        try:
            self.dataset_path, self.dataset = hdf5.find_dataset(self.file, dataset)
            if self.dataset.dtype.kind not in "uifb":
                raise TomotiffError(
                    f"dataset {self.dataset_path} has type {self.dataset.dtype}; images must be numeric"
                )
            self.selection: Selection = select(self.dataset.shape, axis, begin, stop, crop)
        except _DAMAGED_HDF5 as exc:
            self.file.close()
            raise TomotiffError(
                f"cannot read the structure of {path}: {_first_line(exc)}; the file is damaged, "
                "copy it again from where it was written"
            ) from None
        except Exception:
            self.file.close()
            raise
        self.dtype = self.dataset.dtype.newbyteorder("=")
        self.image_shape = self.selection.image_shape
        self.begin, self.stop = self.selection.begin, self.selection.stop
        self.length = self.selection.shape[axis]
        self._image_stride = int(np.prod(self.selection.shape[self.selection.axis + 1 :])) * self.dtype.itemsize
        self._bytes = ContiguousBytes.open(self.dataset, self.selection)
        filtered = self.dataset.id.get_create_plist().get_nfilters() > 0
        self._chunks, self._chunk_error, self.read_path = (
            None,
            (),
            "h5py (unfiltered chunks, which h5py copies fastest)",
        )
        if self._bytes is not None:
            self.read_path = "mapped (contiguous, unfiltered: each worker reads the page cache)"
        elif filtered or READ_UNFILTERED_CHUNKS:
            from tomotiff import chunks  # imagecodecs' start-up is paid only where chunks are decoded

            self._chunks, self._chunk_error = chunks.reader_for(self.dataset), chunks.ChunkError
            self.read_path = self._chunks.describe() if self._chunks else f"h5py ({chunks.why_not(self.dataset)})"
        chunks = self.dataset.chunks
        self.chunk_depth = chunks[axis] if chunks else 1
        self._chunk_rows = chunks[self.selection.rows_dim] if chunks else 1

    def blocks(self, indices: np.ndarray) -> list[tuple[int, int]]:
        image_bytes = self.image_shape[0] * self.image_shape[1] * self.dtype.itemsize
        depth = self.chunk_depth * max(1, TILE_BYTES // (self.chunk_depth * image_bytes))
        return _blocks_of(indices, self.chunk_depth, depth)

    def read_tiles(self, first: int, last: int, row_multiple: int = 1) -> Iterator[tuple[slice, np.ndarray]]:
        """Images first..last-1 as (image, row, column) views, in bands of whole chunk rows
        (and of ``row_multiple`` rows, for binning) of at most about ``TILE_BYTES``."""
        height, width = self.image_shape
        step = math.lcm(self._chunk_rows, row_multiple)
        row_bytes = (last - first) * width * self.dtype.itemsize
        rows = max(step, TILE_BYTES // max(row_bytes, 1) // step * step)
        if rows >= height:
            yield slice(None), self.selection.as_images(self._whole_images(first, last))
            return
        for top in range(0, height, rows):
            band = slice(top, min(top + rows, height))
            buffer = scratch("read", self.selection.buffer_shape(first, last, band), self.dtype)
            self._read(buffer, self.selection.key(first, last, band), first, last)
            yield band, self.selection.as_images(buffer)

    def read_image(self, index: int) -> np.ndarray:
        if not 0 <= index < self.length:
            raise TomotiffError(
                f"reference image -r {index} does not exist: "
                f"the image axis has {self.length} images (0..{self.length - 1})"
            )
        return np.array(self.selection.as_images(self._whole_images(index, index + 1))[0])

    def release(self, first: int, last: int) -> None:
        if self._bytes is not None:
            self._bytes.release(first * self._image_stride, (last - first) * self._image_stride)

    def _whole_images(self, first: int, last: int) -> np.ndarray:
        """Images first..last-1, mapped from the file where possible, else read into a buffer."""
        shape = self.selection.buffer_shape(first, last)
        if self._bytes is not None:
            return self._bytes.view(shape, self.dtype, first * self._image_stride)
        buffer = scratch("read", shape, self.dtype)
        self._read(buffer, self.selection.key(first, last), first, last)
        return buffer

    def _read(self, buffer: np.ndarray, key: tuple, first: int, last: int) -> None:
        """Chunks read and decoded here where chunks.py can, else by h5py (under its lock)."""
        where = f"cannot read images {first}..{last - 1} of {self.dataset_path} in {self.path}"
        try:
            if self._chunks is not None:
                self._chunks.read(buffer, key)
            else:
                self.dataset.read_direct(buffer, source_sel=key)
        except self._chunk_error as exc:
            raise TomotiffError(f"{where}: {exc}") from None
        except (OSError, ValueError, RuntimeError) as exc:
            raise TomotiffError(
                f"{where}: {str(exc).splitlines()[0]} (is the file complete and its compression filter installed?)"
            ) from None

    def image_keys(self, path: str | None, required: bool) -> RawScan | None:
        return raw_scan(self.file, self.length, path, required)

    def notes(self) -> list[str]:
        return []

    def pixel_size(self) -> tuple[PixelSize | None, str | None]:
        return pixel_size_in_file(self.file, self.dataset_path)

    def value_unit(self) -> str | None:
        return hdf5.text_attribute(self.dataset, "units")

    def describe(self) -> dict:
        return {
            "source": os.path.abspath(self.path),
            "dataset": self.dataset_path,
            "axis": self.selection.axis,
            "dataset_shape": list(self.selection.shape),
            "crop": self.selection.crop.margins,
        }

    def image_origin(self, index: int) -> dict:
        return {}

    def close(self) -> None:
        for held in (self._bytes, self._chunks):
            if held is not None:
                held.close()
        self.file.close()


class ContiguousBytes:
    """Whole images of a contiguous, unfiltered dataset, mapped straight from the file.

    HDF5 calls are serialised by h5py's global lock and copy the data; a read-only memory
    map of the file is neither: workers quantise (or write) straight from the page cache,
    in parallel. Used only where the bytes of images ``first..last`` are one range:
    contiguous layout, no filters, native byte order, no crop, and only singleton dimensions
    before the image axis.
    """

    def __init__(self, path: str, offset: int, nbytes: int):
        self.path = path
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size < offset + nbytes:  # mapping past the end would crash
                raise TomotiffError(f"{path} ends before the image data does: the file is truncated")
            self.map = mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)
        self.map.madvise(mmap.MADV_SEQUENTIAL)
        self.offset = offset

    @classmethod
    def open(cls, dataset, selection: Selection) -> "ContiguousBytes | None":
        leading = selection.shape[: selection.axis]
        plain = (
            dataset.chunks is None
            and dataset.compression is None
            and dataset.dtype.isnative
            and selection.crop == Crop()
        )
        offset = dataset.id.get_offset() if plain and all(d == 1 for d in leading) else None
        return None if offset is None else cls(dataset.file.filename, offset, dataset.nbytes)

    def view(self, shape: tuple[int, ...], dtype: np.dtype, start: int) -> np.ndarray:
        """A read-only array over ``shape`` elements from byte ``start`` of the dataset."""
        return np.frombuffer(self.map, dtype, int(np.prod(shape)), self.offset + start).reshape(shape)

    def release(self, start: int, nbytes: int) -> None:
        """Drop a finished range from this process's mapping (the page cache keeps it), so the
        resident memory stays that of the blocks in flight, not of the file."""
        page = mmap.PAGESIZE
        begin = (self.offset + start) // page * page
        end = min(-(-(self.offset + start + nbytes) // page) * page, len(self.map))
        self.map.madvise(mmap.MADV_DONTNEED, begin, end - begin)

    def close(self) -> None:
        self.map.close()


TIFF_EXPECTED = "tiff2tiffux reads one TIFF file per image, named by -i/--input-pattern"


class _TifffileWarnings(logging.Filter):
    """tifffile reports some damage only by logging a warning (a first IFD offset past the end of the
    file: a warning, then no pages), which Python prints as a line of its own before tomotiff's one-line
    error. While a thread reads an input TIFF its warnings are caught here, for the error to name;
    all others pass as before."""

    def __init__(self) -> None:
        super().__init__()
        self._local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        caught = getattr(self._local, "caught", None)
        if caught is None:
            return True
        caught.append(re.sub(r"^<[^>]*> ", "", record.getMessage()))  # without the object's repr
        return False

    @contextmanager
    def catching(self) -> Iterator[list[str]]:
        self._local.caught = caught = []
        try:
            yield caught
        finally:
            self._local.caught = None


_TIFFFILE_LOG = logging.getLogger("tifffile")
_TIFFFILE_WARNINGS = _TifffileWarnings()
_TIFFFILE_LOG.addFilter(_TIFFFILE_WARNINGS)


@contextmanager
def _reading(path: str) -> Iterator[tifffile.TiffFile]:
    """``path`` open as a TIFF. Failing to read it is one line naming the file and what tifffile
    logged about it; the warnings of a file read in full are logged afterwards, as tifffile would.

    Any exception while the file is open is its failure: a damaged file makes tifffile and its
    codecs raise nearly anything (struct.error from a short header, TypeError from a tag of the
    wrong type, a codec's error from a bad strip), and what runs inside only interprets the file."""
    with _TIFFFILE_WARNINGS.catching() as caught:
        try:
            with tifffile.TiffFile(path) as tif:
                yield tif
        except TomotiffError as exc:
            raise TomotiffError(f"{exc}{_said(caught)}") from None
        except OSError as exc:
            raise TomotiffError(f"cannot read {path}: {exc.strerror or exc}{_said(caught)}") from None
        except MemoryError:
            raise
        except Exception as exc:
            raise TomotiffError(
                f"cannot read {path}: {_first_line(exc)}{_said(caught)}; the file is damaged or not "
                "a TIFF, copy it again"
            ) from None
    for message in caught:
        _TIFFFILE_LOG.warning(message)


def _said(caught: list[str]) -> str:
    return f" (tifffile: {caught[0]})" if caught else ""


def _image_page(tif: tifffile.TiffFile, path: str) -> tuple[tifffile.TiffPage, tuple[int, int]]:
    """The one page of a file and its rows and columns (the page's length and width: a 1 x N
    image is an image, not a line). It must hold one single-channel numeric image, and the file all
    of its data: a truncated file, or one whose damaged size would be read as zeros or not fit in
    memory, is an error when it is opened, before anything is written."""
    if len(tif.pages) != 1:
        raise TomotiffError(
            f"{path} holds no image: the file is damaged or truncated; copy it again"
            if not tif.pages
            else f"{path} holds {len(tif.pages)} pages; tiff2tiffux reads one image per file"
        )
    page = tif.pages[0]
    if page.samplesperpixel != 1 or page.imagedepth != 1 or page.dtype is None or page.dtype.kind not in "uifb":
        raise TomotiffError(f"{path} is not a single-channel numeric image (shape {page.shape}, type {page.dtype})")
    rows, cols = page.imagelength, page.imagewidth
    end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts)), default=0)
    if end > tif.filehandle.size:
        raise TomotiffError(
            f"{path} is truncated: its image data ends at byte {end}, the file at {tif.filehandle.size}; copy it again"
        )
    declared, held = math.ceil(cols * page.bitspersample / 8) * rows, sum(page.databytecounts)
    short = page.compression == tifffile.COMPRESSION.NONE and held < declared
    if min(rows, cols) < 1 or short or rows * cols * page.dtype.itemsize > _MEMORY:
        raise TomotiffError(
            f"{path} is damaged: it declares a {rows} x {cols} image of {page.dtype} ({declared} "
            f"bytes) but holds {held} bytes of image data; copy it again"
        )
    return page, (rows, cols)


_MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # no real image is larger


_MEMORY = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # no real image is larger


class TiffSource(_Closing):
    """What TIFF sources share: TIFFs carry no image keys, no calibration tomotiff reads, and
    nothing held between blocks."""

    chunk_depth = 1
    read_path = "tifffile, a page at a time"
    full_shape: tuple[int, int]  # rows, columns before cropping
    dtype: np.dtype

    def blocks(self, indices: np.ndarray) -> list[tuple[int, int]]:
        image_bytes = self.full_shape[0] * self.full_shape[1] * self.dtype.itemsize
        return _blocks_of(indices, 1, max(1, TILE_BYTES // image_bytes))

    def release(self, first: int, last: int) -> None:
        pass

    def notes(self) -> list[str]:
        return []

    def pixel_size(self) -> tuple[PixelSize | None, str | None]:
        return None, None

    def value_unit(self) -> str | None:
        return None

    def image_keys(self, path: str | None, required: bool) -> RawScan | None:
        if required:
            raise TomotiffError(
                "TIFF files carry no image_key: --keys, --split-keys and --image-key-path apply to HDF5 raw scans only"
            )
        return None


class TiffDirSource(TiffSource):
    """Single-page TIFF files named by a printf pattern; the index is the number in the name."""

    def __init__(self, directory: str, pattern: str, begin: int = 0, stop: int | None = None, crop: Crop = Crop()):
        if os.path.isfile(directory):
            raise TomotiffError(
                f"{directory} is a file, not a directory of TIFFs (one image per file, named by the input pattern)"
            )
        if os.path.exists(directory) and not os.path.isdir(directory):
            raise TomotiffError(
                f"{directory} is neither a directory nor a regular file (a FIFO, socket or device); "
                "give a directory of TIFFs or one multi-page TIFF"
            )
        if not os.path.isdir(directory):
            raise TomotiffError(f"input directory not found: {directory}")
        if not os.access(directory, os.R_OK | os.X_OK):
            raise TomotiffError(
                f"cannot list directory {directory}: permission denied; ask its owner for access "
                "(chmod a+rx) or copy the TIFFs somewhere you can read them"
            )
        self.directory = directory
        self.pattern = check_pattern(pattern, "-i/--input-pattern")
        if begin < 0:
            raise TomotiffError(f"-b/--begin must be >= 0, got {begin}")
        if not os.path.exists(self.path(begin)):
            raise TomotiffError(self._no_match(begin))
        self.begin = begin
        self.stop = self._find_stop(begin) if stop is None else self._check_stop(begin, stop)
        self._beyond = self._numbered_beyond(self.stop) if stop is None else []
        for index in range(self.begin, self.stop):  # each a readable file, or nothing is written
            check_input_file(self.path(index), TIFF_EXPECTED)
        self.chunk_depth = 1
        self.dtype, self.full_shape = self._open(begin)
        self.crop = crop.check(*self.full_shape)
        self._rows, self._cols = crop.rows(self.full_shape[0]), crop.cols(self.full_shape[1])
        self.image_shape = (len(range(self.full_shape[0])[self._rows]), len(range(self.full_shape[1])[self._cols]))

    def path(self, index: int) -> str:
        return os.path.join(self.directory, format_name(self.pattern, index))

    def _no_match(self, index: int) -> str:
        present = sorted(n for n in os.listdir(self.directory) if n.lower().endswith((".tif", ".tiff")))[:3]
        seen = f"files there include {', '.join(present)}" if present else "it holds no .tif/.tiff files"
        return (
            f"no input file {format_name(self.pattern, index)!r} in {self.directory} (pattern {self.pattern!r}, "
            f"index {index}); {seen}; check -i/--input-pattern and -b/--begin"
        )

    def _find_stop(self, begin: int) -> int:
        stop = begin + 1
        while os.path.exists(self.path(stop)):
            stop += 1
        return stop

    def _numbered_beyond(self, stop: int) -> list[int]:
        """The indices of files named by the pattern past the gap at ``stop`` (one directory listing)."""
        found = (pattern_index(self.pattern, name) for name in os.listdir(self.directory))
        return sorted(index for index in found if index is not None and index > stop)

    def notes(self) -> list[str]:
        if not self._beyond:
            return []
        first, count = self._beyond[0], len(self._beyond)
        return [
            f"warning: the numbering of {self.pattern} stops at {self.stop - 1} "
            f"(no {format_name(self.pattern, self.stop)}), "
            f"but {count} file{'s' if count > 1 else ''} lie beyond the gap, from {format_name(self.pattern, first)}; "
            f"to include them, run again with -b {first} (and -s)"
        ]

    def _check_stop(self, begin: int, stop: int) -> int:
        if stop <= begin:
            raise TomotiffError(f"-s/--stop {stop} must be greater than -b/--begin {begin} (stop is exclusive)")
        missing = next((i for i in range(begin, stop) if not os.path.exists(self.path(i))), None)
        if missing is not None:
            raise TomotiffError(
                f"-s/--stop {stop}: input file {self.path(missing)} is missing; "
                f"the consecutive files end at {self._find_stop(begin) - 1}"
            )
        return stop

    def _open(self, index: int) -> tuple[np.dtype, tuple[int, int]]:
        """dtype and 2-D shape of one file, which must hold exactly one numeric image."""
        path = self.path(index)
        with _reading(path) as tif:
            page, shape = _image_page(tif, path)
            return page.dtype.newbyteorder("="), shape

    def read_tiles(self, first: int, last: int, row_multiple: int = 1) -> Iterator[tuple[slice, np.ndarray]]:
        buffer = scratch("read", (last - first, *self.full_shape), self.dtype)
        for offset in range(last - first):
            self._read_into(first + offset, buffer[offset])
        yield slice(None), buffer[:, self._rows, self._cols]

    def read_image(self, index: int) -> np.ndarray:
        if not os.path.exists(self.path(index)):
            raise TomotiffError(f"reference image -r {index} does not exist: no file {self.path(index)}")
        check_input_file(self.path(index), TIFF_EXPECTED)
        image = np.empty(self.full_shape, self.dtype)
        self._read_into(index, image)
        return image[self._rows, self._cols]

    def _read_into(self, index: int, out: np.ndarray) -> None:
        path = self.path(index)
        with _reading(path) as tif:
            page, shape = _image_page(tif, path)
            if shape != self.full_shape:
                raise TomotiffError(f"{path} has shape {shape}, unlike the first image's {self.full_shape}")
            if page.dtype.newbyteorder("=") != self.dtype:
                out[...] = page.asarray()
            else:
                page.asarray(out=out.reshape(page.shape))

    def describe(self) -> dict:
        return {"source": os.path.abspath(self.directory), "input_pattern": self.pattern, "crop": self.crop.margins}

    def image_origin(self, index: int) -> dict:
        return {"input_file": format_name(self.pattern, index)}

    def close(self) -> None:
        pass
