"""Where images go (the *sink* stage): one TIFF per image, written atomically.

Each file is written under a hidden temporary name in the output directory and renamed
into place, so a killed run never leaves a partial file under a final name; the temporary
name is fixed per image, so a rerun overwrites any leftover and ends with none.
"""

import errno
import fcntl
import json
import mmap
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import tifffile
import xxhash

from tomotiff import __version__
from tomotiff.errors import TomotiffError
from tomotiff.pattern import check_pattern, format_name

CHECKSUM = "xxh3_128"  # of each whole file; `xxh128sum FILE` prints the same; ~10 GB/s, sha256 ~1 GB/s


_CHECKSUM_WINDOW = 64 << 20  # bytes of a file mapped at a time while checksumming


def file_checksum(handle: BinaryIO) -> str:
    """The XXH3-128 checksum of a whole open file.

    Hashed through read-only memory maps of 64 MiB windows: straight from the page cache,
    without copying the file into a buffer (a just-written TIFF is hashed where it lies),
    and with memory bounded for stacks of any size."""
    hasher = xxhash.xxh3_128()
    fd = handle.fileno()
    size = os.fstat(fd).st_size
    for offset in range(0, size, _CHECKSUM_WINDOW):
        with mmap.mmap(fd, min(_CHECKSUM_WINDOW, size - offset), access=mmap.ACCESS_READ, offset=offset) as window:
            hasher.update(window)
    return hasher.hexdigest()


def temporary_name(name: str) -> str:
    """The hidden name a file is written under before it is renamed to ``name``."""
    return f".{name}.part"


def prepare_directory(directory: str) -> None:
    """Create the output directory if needed and check that it can be written."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise TomotiffError(f"cannot create output directory {directory}: {exc.strerror}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise TomotiffError(f"output directory {directory} is not writable; choose another OUTPUT_DIR or fix its permissions")


@contextmanager
def directory_lock(directory: str, name: str) -> Iterator[None]:
    """Hold an exclusive lock named ``name`` in ``directory`` so two runs never mix their files."""
    path = os.path.join(directory, f".{name}.lock")
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as exc:
        raise TomotiffError(f"cannot create lock file {path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise TomotiffError(f"another tomotiff run is writing to {directory} (it holds {path}); "
                                "wait for it to finish or choose another OUTPUT_DIR") from None
        yield
    finally:
        _remove(path)
        os.close(fd)


METADATA_TAG = 65000  # private TIFF tag holding the JSON metadata when ImageDescription is ImageJ's
COMPRESSIONS = {"none": None, "zstd": "zstd", "zlib": "zlib", "lzw": "lzw", "packbits": "packbits"}


@dataclass(frozen=True)
class TiffFormat:
    """How files are encoded: compression, and ImageJ metadata (with its display range)."""

    compression: str = "none"
    imagej: bool = False
    display_range: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSIONS:
            raise TomotiffError(f"--compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}")

    def options(self, metadata: str, pages: int = 1) -> dict:
        """tifffile.imwrite keywords; the JSON ``metadata`` goes to ImageDescription, or with
        ImageJ (whose own text must be there) to the private tag ``METADATA_TAG``."""
        common = {"compression": COMPRESSIONS[self.compression], "software": f"tomotiff {__version__}",
                  "photometric": "minisblack"}
        if not self.imagej:
            return {**common, "description": metadata, "metadata": None, "byteorder": "<", "bigtiff": pages > 1}
        imagej = {"axes": "ZYX" if pages > 1 else "YX"}
        if self.display_range is not None:
            imagej.update(min=self.display_range[0], max=self.display_range[1])
        return {**common, "imagej": True, "metadata": imagej, "extratags": [(METADATA_TAG, "s", 0, metadata, True)]}


def _write_atomically(directory: str, name: str, write) -> str:
    """Call ``write(handle)`` on a hidden temporary file, checksum it, rename it to ``name``."""
    final = os.path.join(directory, name)
    temporary = os.path.join(directory, temporary_name(name))
    try:
        _remove(temporary)
        with open(temporary, "x+b") as handle:  # exclusive create: never writes through a symlink
            write(handle)
            handle.flush()  # the checksum maps the file
            digest = file_checksum(handle)
        os.replace(temporary, final)
    except OSError as exc:
        _remove(temporary)
        raise TomotiffError(write_error(final, exc)) from None
    except BaseException:
        _remove(temporary)
        raise
    return digest


class TiffSink:
    """Writes image ``index`` as ``directory/pattern % index`` with JSON metadata."""

    ordered = False

    def __init__(self, directory: str, pattern: str, metadata: dict, fmt: TiffFormat = TiffFormat()):
        self.directory = directory
        self.pattern = check_pattern(pattern, "-o/--output-pattern")
        self.metadata = metadata
        self.format = fmt

    def name(self, index: int) -> str:
        return format_name(self.pattern, index)

    def write(self, index: int, image: np.ndarray, origin: dict) -> dict:
        """Write one image atomically; return its manifest entry (index, file, checksum)."""
        name = self.name(index)
        options = self.format.options(json.dumps({**self.metadata, "index": index, **origin}, sort_keys=True))
        digest = _write_atomically(self.directory, name, lambda handle: tifffile.imwrite(handle, image, **options))
        return {"index": index, "file": name, CHECKSUM: digest}

    def finish(self, entries: list[dict]) -> list[dict]:
        return entries

    def abort(self) -> None:
        pass


class StackSink:
    """Writes every image as one page of a single multi-page file (BigTIFF, or ImageJ's format),
    streamed from a writer thread, so memory stays bounded; images must come in index order."""

    ordered = True

    def __init__(self, directory: str, name: str, metadata: dict, fmt: TiffFormat, count: int,
                 image_shape: tuple[int, int], dtype: np.dtype):
        self.directory, self.name, self.count = directory, name, count
        self.pages: queue.Queue = queue.Queue(maxsize=4)
        self.digest: str | None = None
        self.error: BaseException | None = None
        options = fmt.options(json.dumps(metadata, sort_keys=True), pages=count)
        self.thread = threading.Thread(target=self._write, args=(options, (count, *image_shape), dtype), daemon=True)
        self.thread.start()

    def _write(self, options: dict, shape: tuple[int, ...], dtype: np.dtype) -> None:
        try:
            self.digest = _write_atomically(self.directory, self.name, lambda handle: tifffile.imwrite(
                handle, data=self._page_iterator(), shape=shape, dtype=dtype, **options))
        except BaseException as exc:  # reported by write() or finish() in the engine's threads
            self.error = exc

    def _page_iterator(self) -> Iterator[np.ndarray]:
        for _ in range(self.count):
            page = self.pages.get()
            if page is None:
                raise _Aborted()
            yield page

    def write(self, index: int, image: np.ndarray, origin: dict) -> dict:
        page = image.copy()  # the engine reuses its buffer
        while self.thread.is_alive():
            try:
                self.pages.put(page, timeout=0.5)
                break
            except queue.Full:
                continue
        self._raise_error()
        return {"index": index, "file": self.name, **origin}

    def finish(self, entries: list[dict]) -> list[dict]:
        self.thread.join()
        self._raise_error()
        return [{**entry, "page": page, CHECKSUM: self.digest} for page, entry in enumerate(entries)]

    def abort(self) -> None:
        with suppress(queue.Full):
            self.pages.put_nowait(None)
        self.thread.join(timeout=30)

    def _raise_error(self) -> None:
        if self.error is not None and not isinstance(self.error, _Aborted):
            raise self.error


class _Aborted(Exception):
    """Ends the stack writer when the run fails (its temporary file is then removed)."""


def write_error(path: str, exc: OSError) -> str:
    """The one-line message for a failed write; a short write is a full disk or a size limit."""
    full = exc.errno in (None, errno.ENOSPC, errno.EFBIG, errno.EDQUOT)
    return f"cannot write {path}: {exc.strerror or exc}" + ("; check free space, quotas and ulimit -f" if full else "")


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)
