"""One job, decided before any pixel moves: a :class:`Request` (what the user asked, from the
command line or one scan of a batch) becomes a :class:`Plan` (everything about the job), once.

The plan says which source to open, which images choose the window (a raw scan's projections),
and the output groups: the images read together and the directories they go to, one per
product (u8, u16, f32 or the stored type) and, with ``split_keys``, per kind of image. Plans,
like sources, never change; :mod:`tomotiff.pipeline` runs them.
"""

import os
from dataclasses import dataclass

import numpy as np

from tomotiff.binning import check_factor
from tomotiff.calibration import PixelSize
from tomotiff.errors import TomotiffError
from tomotiff.keys import KEY_NAMES, RawScan
from tomotiff.manifest import MANIFEST_NAME
from tomotiff.pattern import DEFAULT_PATTERN, check_pattern
from tomotiff.selection import Crop, ImageSet
from tomotiff.sink import TiffFormat
from tomotiff.source import Hdf5Source, Source, TiffDirSource
from tomotiff.window import Window, WindowRequest

SOURCE_KINDS = ("hdf5", "tiff")


@dataclass(frozen=True)
class SourceRequest:
    """Where the images come from: an HDF5 dataset (``dataset``: None for the NeXus default signal,
    images along ``axis``), a directory of TIFFs named by ``input_pattern``, or one multi-page TIFF
    (its pages); images begin..stop-1 (stop None: to the end), each cropped by ``crop``."""

    path: str
    kind: str = "hdf5"
    dataset: str | None = None
    axis: int = 0
    input_pattern: str = DEFAULT_PATTERN
    begin: int = 0
    stop: int | None = None
    crop: Crop = Crop()

    def __post_init__(self) -> None:
        if self.kind not in SOURCE_KINDS:
            raise TomotiffError(f"a source is hdf5 or tiff, not {self.kind!r}")

    def open(self) -> Source:
        """The source, opened read-only (a context manager)."""
        if self.kind == "tiff" and os.path.isfile(self.path):  # one multi-page file: images numbered by page
            from tomotiff.tiff_stack import TiffStackSource

            return TiffStackSource(self.path, self.begin, self.stop, self.crop)
        if self.kind == "tiff":
            return TiffDirSource(self.path, self.input_pattern, self.begin, self.stop, self.crop)
        return Hdf5Source(self.path, self.dataset, self.axis, self.begin, self.stop, self.crop)


@dataclass(frozen=True)
class Product:
    """One output made of every image: ``bits`` 8 or 16 quantise through ``window`` (how to choose
    it, or a window already chosen), 32 writes float32, None keeps the stored type."""

    bits: int | None = None
    window: WindowRequest | Window | None = None

    def __post_init__(self) -> None:
        if self.bits not in (None, 8, 16, 32):
            raise TomotiffError(f"bit depth must be 8, 16 or 32, not {self.bits}")
        if self.bits in (8, 16) and self.window is None:
            object.__setattr__(self, "window", WindowRequest())

    @property
    def name(self) -> str:
        """u8, u16 (quantised), f32 or keep: the workflow's directory names."""
        return "keep" if self.bits is None else "f32" if self.bits == 32 else f"u{self.bits}"


@dataclass(frozen=True)
class Layout:
    """How the output is laid out: file format, one stack file or one file per image, binning."""

    format: TiffFormat = TiffFormat()
    stack: bool = False
    binning: int = 1

    def describe(self) -> dict:
        described = {
            "compression": self.format.compression,
            "imagej": self.format.imagej,
            "stack": self.stack,
            "bin": self.binning,
        }
        return {**described, "ome": True} if self.format.ome else described


@dataclass(frozen=True)
class Destination:
    """Where outputs go: ``root``, then the product's name (``by_product``, the workflow's
    results/{scan}/{depth}), then the kind of image when split by key. Each output's manifest is
    ``manifest_name`` beside its images, or under ``records`` (same subdirectories) when shards
    of one output each write a partial manifest."""

    root: str
    by_product: bool = False
    records: str | None = None
    manifest_name: str = MANIFEST_NAME

    def directory(self, product: str, kind: str | None) -> str:
        return self._below(self.root, product, kind)

    def manifest(self, product: str, kind: str | None) -> str:
        return os.path.join(self._below(self.records or self.root, product, kind), self.manifest_name)

    def _below(self, root: str, product: str, kind: str | None) -> str:
        return os.path.join(root, *([product] if self.by_product else []), *([kind] if kind else []))


@dataclass(frozen=True)
class Request:
    """What to do. ``keys`` selects a raw scan's projections, flats or darks (all: every image);
    ``split_keys`` writes each kind present into its own directory (with ``keys`` a kind: only
    that one). ``scan_range`` marks a shard: the request covers part of a scan whose whole range
    is ``scan_range``; a kind absent from the shard is then no error, only one absent from the scan."""

    source: SourceRequest
    products: tuple[Product, ...]
    destination: Destination
    pattern: str = DEFAULT_PATTERN
    keys: str = "all"
    split_keys: bool = False
    image_key_path: str | None = None
    layout: Layout = Layout()
    scan_range: tuple[int, int] | None = None
    pixel_size: PixelSize | None = None  # given (--pixel-size); else the source's, if it records one

    def __post_init__(self) -> None:
        if not self.products:
            raise TomotiffError("a request needs at least one product")
        if self.keys not in (*KEY_NAMES, "all"):
            raise TomotiffError(f"unknown image selection {self.keys!r}: choose one of {', '.join(KEY_NAMES)}, all")

    @property
    def needs_keys(self) -> bool:
        """Asking for kinds of image, or naming the key dataset, makes missing keys an error."""
        return self.keys != "all" or self.split_keys or self.image_key_path is not None


@dataclass(frozen=True)
class Target:
    """One output directory: a product of a group's images, and its manifest."""

    product: Product
    directory: str
    manifest: str


@dataclass(frozen=True)
class Group:
    """Images read once and written to each of ``targets``."""

    images: ImageSet
    targets: tuple[Target, ...]


@dataclass(frozen=True, eq=False)
class Plan:
    """Everything about one job, decided once from the request and the opened source's metadata."""

    request: Request
    source_description: dict
    keys: RawScan | None  # a raw scan's image keys
    window_images: np.ndarray  # the candidates a window is chosen from (read-only)
    groups: tuple[Group, ...]
    pixel_size: PixelSize | None = None  # of the source's pixels (before binning)
    value_unit: str | None = None

    def describe(self) -> dict:
        """The source, a raw scan's image_key dataset and the output's pixel size (for the metadata)."""
        described = dict(self.source_description)
        if self.keys is not None:
            described["image_key_path"] = self.keys.path
        if self.pixel_size is not None:
            described.update(self.pixel_size.binned(self.request.layout.binning).describe())
        if self.value_unit:
            described["value_unit"] = self.value_unit
        return described


def make_plan(request: Request, source: Source, say=lambda line: None) -> Plan:
    """The plan of ``request`` on the opened ``source`` (its metadata and image keys only); ``say``
    hears why a pixel size the source records is not used."""
    check_pattern(request.pattern, "the output pattern")
    check_factor(request.layout.binning, source.image_shape)
    keys = source.image_keys(request.image_key_path, request.needs_keys)
    span = np.arange(source.begin, source.stop)
    window_images = span if keys is None else keys.window_images(source.begin, source.stop, span)
    window_images = np.array(window_images, np.int64)
    window_images.flags.writeable = False
    groups = tuple(Group(images, _targets(request, images.kind)) for images in _image_sets(request, source, keys))
    pixel_size, why_not = (request.pixel_size, None) if request.pixel_size else source.pixel_size()
    if why_not:
        say(why_not)
    return Plan(request, source.describe(), keys, window_images, groups, pixel_size, source.value_unit())


def _image_sets(request: Request, source: Source, keys: RawScan | None) -> list[ImageSet]:
    begin, stop = source.begin, source.stop
    if keys is None:
        return [ImageSet(np.arange(begin, stop))]
    if request.split_keys and request.keys == "all":
        return [ImageSet(indices, kind, keys) for kind, indices in keys.outputs("all", True, begin, stop)]
    kind = request.keys if request.split_keys else None
    if request.scan_range is None:
        ((_, indices),) = keys.outputs(request.keys, False, begin, stop)
        return [ImageSet(indices, kind, keys)]
    keys.outputs(request.keys, False, *request.scan_range)  # the scan holds some, or the one-line error
    return [ImageSet(keys.indices(request.keys, begin, stop), kind, keys)]


def _targets(request: Request, kind: str | None) -> tuple[Target, ...]:
    where = request.destination
    return tuple(
        Target(product, where.directory(product.name, kind), where.manifest(product.name, kind))
        for product in request.products
    )
