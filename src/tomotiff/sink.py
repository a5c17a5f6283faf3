"""Where images go (the *sink* stage): one TIFF per image, written atomically.

Each file is written under a hidden temporary name in the output directory and renamed
into place, so a killed run never leaves a partial file under a final name; the temporary
name is fixed per image, so a rerun overwrites any leftover and ends with none.
"""

import json
import os
import queue
import threading
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import tifffile

from tomotiff import __version__
from tomotiff.errors import TomotiffError
from tomotiff.files import CHECKSUM, file_checksum, write_atomically
from tomotiff.pattern import format_name


class Sink(Protocol):
    """Where an output's images go. The engine calls :meth:`write` per image (in index order
    when ``ordered``), then :meth:`finish` once, or :meth:`abort` if the run fails."""

    ordered: bool  # images must arrive in index order (one stream, such as a stack file)

    def write(self, index: int, image: np.ndarray, origin: dict) -> dict:
        """Write image ``index`` (``origin``: what identifies it, recorded in its metadata); return
        the facts of where it went (file, and page or checksum) for its manifest entry. ``image``
        may be the engine's reused buffer: copy what is kept."""

    def finish(self) -> dict:
        """Complete the output; return the facts every entry shares, known only now (a stack's checksum)."""

    def abort(self) -> None:
        """Give up: leave no partial file behind."""


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


def _write_tiff(path: str, options: dict, **data) -> str:
    """Write a TIFF atomically with tifffile; return its checksum."""

    def write(handle) -> str:
        tifffile.imwrite(handle, **data, **options)
        handle.flush()  # the checksum maps the file
        return file_checksum(handle)

    return write_atomically(path, write)


class TiffSink:
    """Writes image ``index`` as ``directory/pattern % index`` with JSON metadata."""

    ordered = False

    def __init__(self, directory: str, pattern: str, metadata: dict, fmt: TiffFormat = TiffFormat()):
        self.directory = directory
        self.pattern = pattern
        self.metadata = metadata
        self.format = fmt

    def name(self, index: int) -> str:
        return format_name(self.pattern, index)

    def write(self, index: int, image: np.ndarray, origin: dict) -> dict:
        """Write one image atomically, its metadata with its index and origin."""
        name = self.name(index)
        options = self.format.options(json.dumps({**self.metadata, "index": index, **origin}, sort_keys=True))
        digest = _write_tiff(os.path.join(self.directory, name), options, data=image)
        return {"file": name, CHECKSUM: digest}

    def finish(self) -> dict:
        return {}

    def abort(self) -> None:
        pass


class StackSink:
    """Writes every image as one page of a single multi-page file (BigTIFF, or ImageJ's format),
    streamed from a writer thread, so memory stays bounded; images must come in index order."""

    ordered = True

    def __init__(self, directory: str, name: str, metadata: dict, fmt: TiffFormat, count: int,
                 image_shape: tuple[int, int], dtype: np.dtype):
        self.directory, self.name, self.count = directory, name, count
        self.written = 0
        self.pages: queue.Queue = queue.Queue(maxsize=4)
        self.digest: str | None = None
        self.error: BaseException | None = None
        options = fmt.options(json.dumps(metadata, sort_keys=True), pages=count)
        self.thread = threading.Thread(target=self._write, args=(options, (count, *image_shape), dtype), daemon=True)
        self.thread.start()

    def _write(self, options: dict, shape: tuple[int, ...], dtype: np.dtype) -> None:
        try:
            self.digest = _write_tiff(os.path.join(self.directory, self.name), options,
                                      data=self._page_iterator(), shape=shape, dtype=dtype)
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
        self.written += 1
        return {"file": self.name, "page": self.written - 1}

    def finish(self) -> dict:
        self.thread.join()
        self._raise_error()
        return {CHECKSUM: self.digest}

    def abort(self) -> None:
        with suppress(queue.Full):
            self.pages.put_nowait(None)
        self.thread.join(timeout=30)

    def _raise_error(self) -> None:
        if self.error is not None and not isinstance(self.error, _Aborted):
            raise self.error


class _Aborted(Exception):
    """Ends the stack writer when the run fails (its temporary file is then removed)."""
