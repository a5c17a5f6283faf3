"""Where images go (the *sink* stage): one TIFF per image, written atomically.

Each file is written under a hidden temporary name in the output directory and renamed
into place, so a killed run never leaves a partial file under a final name; the temporary
name is fixed per image, so a rerun overwrites any leftover and ends with none.
"""

import json
import os
import queue
import threading
import uuid
from collections.abc import Iterator
from contextlib import suppress
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import tifffile

from tomotiff import __version__
from tomotiff.calibration import ValueCalibration
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

    def finish(self) -> dict[str, dict]:
        """Complete the output; return, per file written, the facts its entries gain only now (a
        stack file's checksum)."""

    def abort(self) -> None:
        """Give up: leave no partial file behind."""


COMPRESSIONS = {"none": None, "zstd": "zstd", "zlib": "zlib", "lzw": "lzw", "packbits": "packbits"}
IMAGEJ_COMPRESSIONS = ("none", "zlib", "lzw", "packbits")  # what ImageJ 1.53t opens (tested: zstd it does not)
CLASSIC_TIFF_BYTES = 4 * 1000**3  # a stack file's size limit: classic TIFF's 4 GiB, less room for tags


@dataclass(frozen=True)
class TiffFormat:
    """How files are encoded: compression; ImageJ metadata (display range, value calibration,
    provenance as ImageJ's Info, slice labels); the pixel size, in micrometres, as resolution."""

    compression: str = "none"
    imagej: bool = False
    display_range: tuple[float, float] | None = None
    pixel_size_um: float | None = None
    calibration: ValueCalibration | None = None
    ome: bool = False

    def __post_init__(self) -> None:
        if self.ome and self.imagej:
            raise TomotiffError(
                "--ome and --imagej are two ways of describing a file: choose one "
                "(Fiji reads both; napari and Bio-Formats prefer --ome)"
            )
        if self.compression not in COMPRESSIONS:
            raise TomotiffError(f"--compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}")
        if self.imagej and self.compression not in IMAGEJ_COMPRESSIONS:
            raise TomotiffError(
                f"ImageJ cannot open {self.compression}-compressed TIFFs: with --imagej use "
                f"--compression {', '.join(IMAGEJ_COMPRESSIONS)}"
            )

    def options(
        self,
        metadata: str,
        pages: int = 1,
        labels: list[str] | None = None,
        display_range: tuple[float, float] | None = None,
    ) -> dict:
        """tifffile.imwrite keywords. The JSON ``metadata`` goes to ImageDescription, or with ImageJ
        (whose own text must be there) to ImageJ's Info, which Image > Show Info shows."""
        common = {
            "compression": COMPRESSIONS[self.compression],
            "software": f"tomotiff {__version__}",
            "photometric": "minisblack",
        }
        if not self.imagej and self.pixel_size_um is not None:  # libtiff, GDAL, ImageJ read cm (ImageJ shows µm)
            per_cm = 1e4 / self.pixel_size_um
            common.update(resolution=(per_cm, per_cm), resolutionunit="CENTIMETER")
        if self.ome:
            return {**common, **self._ome(metadata, pages)}
        if not self.imagej:
            return {**common, "description": metadata, "metadata": None, "byteorder": "<"}
        imagej: dict = {"axes": "ZYX" if pages > 1 else "YX", "Info": metadata}
        shown = display_range or self.display_range
        if shown is not None:
            imagej.update(min=shown[0], max=shown[1])
        if self.pixel_size_um is not None:
            imagej.update(unit="um", spacing=self.pixel_size_um)
            common.update(resolution=(1 / self.pixel_size_um, 1 / self.pixel_size_um))
        if self.calibration is not None:  # ImageJ 1.53t applies it only with a vunit, even an empty one
            imagej.update(cf=0, c0=self.calibration.c0, c1=self.calibration.c1, vunit=self.calibration.unit or "")
        if labels:
            imagej["Labels"] = labels
        return {**common, "imagej": True, "metadata": imagej}

    def _ome(self, metadata: str, pages: int) -> dict:
        """OME-TIFF (tifffile's writer): the pixel size as PhysicalSize, the JSON as the image's
        Description, and a UUID derived from it, so the same image gives the same bytes."""
        axes = "ZYX" if pages > 1 else "YX"
        ome: dict = {
            "axes": axes,
            "Description": metadata,
            "UUID": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, metadata)}",
        }
        if self.pixel_size_um is not None:
            for axis in axes[-3:] if pages > 1 else axes:
                ome.update({f"PhysicalSize{axis}": self.pixel_size_um, f"PhysicalSize{axis}Unit": "µm"})
        return {"ome": True, "metadata": ome, "byteorder": "<"}


def finite_range(image: np.ndarray) -> tuple[float, float] | None:
    """The finite min and max of a float image (a display range ImageJ can show), None if none."""
    finite = image[np.isfinite(image)]
    return (float(finite.min()), float(finite.max())) if finite.size else None


def _write_tiff(path: str, options: dict, finish=None, **data) -> str:
    """Write a TIFF atomically with tifffile; ``finish(handle)`` may amend it before it is
    checksummed and renamed; return its checksum."""

    def write(handle) -> str:
        tifffile.imwrite(handle, **data, **options)
        if finish is not None:
            finish(handle)
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
        shown = finite_range(image) if self.format.imagej and image.dtype.kind == "f" else None
        options = self.format.options(
            json.dumps({**self.metadata, "index": index, **origin}, sort_keys=True), display_range=shown
        )
        digest = _write_tiff(os.path.join(self.directory, name), options, data=image)
        return {"file": name, CHECKSUM: digest}

    def finish(self) -> dict[str, dict]:
        return {}

    def abort(self) -> None:
        pass


class StackSink:
    """Writes every image as one page of a multi-page classic TIFF (ImageJ's format with --imagej),
    streamed from a writer thread, so memory stays bounded; images must come in index order.

    Classic TIFF, which every reader opens (ImageJ 1.x reads no BigTIFF; ImageJ's own format
    past 4 GiB is one page to libtiff), holds 4 GiB: a larger stack is written as several
    files of whole pages, each named by its first image with the output pattern."""

    ordered = True

    def __init__(
        self,
        directory: str,
        pattern: str,
        indices: list[int],
        metadata: dict,
        fmt: TiffFormat,
        image_shape: tuple[int, int],
        dtype: np.dtype,
        labels: list[str],
    ):
        page_bytes = image_shape[0] * image_shape[1] * np.dtype(dtype).itemsize
        per_file = max(1, CLASSIC_TIFF_BYTES // max(page_bytes, 1))
        self.parts = [indices[start : start + per_file] for start in range(0, len(indices), per_file)]
        self.directory, self.pattern, self.metadata, self.format = directory, pattern, metadata, fmt
        self.image_shape, self.dtype, self.labels = image_shape, np.dtype(dtype), labels
        self.digests: dict[str, str] = {}
        self.part: _StackFile | None = None

    def write(self, index: int, image: np.ndarray, origin: dict) -> dict:
        if self.part is None or self.part.full():
            self._next_part()
        return self.part.write(image)

    def _next_part(self) -> None:
        if self.part is not None:
            self.digests[self.part.name] = self.part.close()
        start = sum(len(part) for part in self.parts[: len(self.digests)])
        indices = self.parts[len(self.digests)]
        metadata = {**self.metadata, "indices": [int(i) for i in indices]}
        self.part = _StackFile(
            self.directory,
            format_name(self.pattern, indices[0]),
            metadata,
            self.format,
            len(indices),
            self.image_shape,
            self.dtype,
            self.labels[start : start + len(indices)],
        )

    def finish(self) -> dict[str, dict]:
        if self.part is not None:
            self.digests[self.part.name] = self.part.close()
        return {name: {CHECKSUM: digest} for name, digest in self.digests.items()}

    def abort(self) -> None:
        if self.part is not None:
            self.part.abort()


class _StackFile:
    """One multi-page file, written page by page from its own thread."""

    def __init__(
        self,
        directory: str,
        name: str,
        metadata: dict,
        fmt: TiffFormat,
        count: int,
        image_shape: tuple[int, int],
        dtype: np.dtype,
        labels: list[str],
    ):
        self.directory, self.name, self.count, self.format = directory, name, count, fmt
        self.written = 0
        self.range: tuple[float, float] | None = None  # of a float stack's finite pixels, for ImageJ's display
        self.pages: queue.Queue = queue.Queue(maxsize=4)
        self.digest: str | None = None
        self.error: BaseException | None = None
        options = fmt.options(json.dumps(metadata, sort_keys=True), pages=count, labels=labels)
        self.thread = threading.Thread(target=self._write, args=(options, (count, *image_shape), dtype), daemon=True)
        self.thread.start()

    def _write(self, options: dict, shape: tuple[int, ...], dtype: np.dtype) -> None:
        shown = self.format.imagej and dtype.kind == "f" and self.format.display_range is None
        try:
            self.digest = _write_tiff(
                os.path.join(self.directory, self.name),
                options,
                self._show_range if shown else None,
                data=self._page_iterator(),
                shape=shape,
                dtype=dtype,
            )
        except BaseException as exc:  # reported by write() or close() in the engine's threads
            self.error = exc

    def _page_iterator(self) -> Iterator[np.ndarray]:
        for _ in range(self.count):
            page = self.pages.get()
            if page is None:
                raise _Aborted()
            found = finite_range(page) if page.dtype.kind == "f" else None
            if found is not None:
                self.range = (
                    found if self.range is None else (min(self.range[0], found[0]), max(self.range[1], found[1]))
                )
            yield page

    def _show_range(self, handle) -> None:
        """Add the stack's finite min and max to ImageJ's description, known once every page is
        written (a float stack with +-Inf would otherwise open black: ImageJ shows -Inf..Inf)."""
        if self.range is None:
            return
        handle.seek(0)
        with tifffile.TiffFile(handle) as tif:
            tag = tif.pages[0].tags["ImageDescription"]
            tag.overwrite(f"{tag.value.rstrip(chr(10))}\nmin={self.range[0]!r}\nmax={self.range[1]!r}\n")

    def full(self) -> bool:
        return self.written == self.count

    def write(self, image: np.ndarray) -> dict:
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

    def close(self) -> str:
        self.thread.join()
        self._raise_error()
        return self.digest

    def abort(self) -> None:
        with suppress(queue.Full):
            self.pages.put_nowait(None)
        self.thread.join(timeout=30)

    def _raise_error(self) -> None:
        if self.error is not None and not isinstance(self.error, _Aborted):
            raise self.error


class _Aborted(Exception):
    """Ends the stack writer when the run fails (its temporary file is then removed)."""
