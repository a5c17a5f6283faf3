"""One extraction from start to finish: choose the window, stream the images, write the manifest.

This is the library entry point the three commands and the workflow's shard jobs share,
so an image is computed the same way whichever of them writes it.
"""

import os
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from tomotiff import __version__, engine
from tomotiff.binning import binned_shape, check_factor
from tomotiff.errors import TomotiffError
from tomotiff.histogram import global_window
from tomotiff.manifest import MANIFEST_NAME, write_manifest
from tomotiff.pattern import check_pattern, format_name
from tomotiff.quantisation import FORMULA, FORMULA_NAME, INVERSE, convert, output_dtype, quantise
from tomotiff.sink import StackSink, TiffFormat, TiffSink, directory_lock, prepare_directory
from tomotiff.source import Source
from tomotiff.window import Window, check_percent, resolve_window, saturation_warning, with_explicit_sides


@dataclass(frozen=True)
class Conversion:
    """What happens to each pixel: kept as is, widened to float32, or quantised to ``bits``."""

    mode: str  # "keep", "float32" or "quantise"
    bits: int | None = None
    window: Window | None = None

    def out_dtype(self, in_dtype: np.dtype) -> np.dtype:
        if self.mode == "quantise":
            return output_dtype(self.bits)
        return np.dtype(np.float32) if self.mode == "float32" else np.dtype(in_dtype)

    def transform(self, in_dtype: np.dtype):
        """The per-tile function, or None when the pixels are written exactly as read."""
        if self.mode == "quantise":
            return partial(_quantise_tile, lo=self.window.lo, hi=self.window.hi, bits=self.bits)
        return None if self.out_dtype(in_dtype) == np.dtype(in_dtype) else convert

    def describe(self) -> dict:
        if self.mode != "quantise":
            return {"bits": None, "lo": None, "hi": None, "formula": "unchanged" if self.mode == "keep" else "float32(x)"}
        return {"bits": self.bits, "lo": self.window.lo, "hi": self.window.hi, "formula": FORMULA,
                "formula_name": FORMULA_NAME, "inverse": INVERSE, "window": self.window.as_dict()}


def _quantise_tile(tile: np.ndarray, out: np.ndarray, lo: float, hi: float, bits: int) -> None:
    quantise(tile, lo, hi, bits, out=out)


def keep_conversion(dtype: np.dtype, fp: bool) -> Conversion:
    """nxs2tiff: floating-point data is written only when asked with --fp (as the beamline page says)."""
    if fp:
        return Conversion("float32")
    if np.dtype(dtype).kind == "f":
        raise TomotiffError(f"the data are floating point ({np.dtype(dtype)}): add --fp to write float32 TIFFs, "
                            "or use nxs2tiffux to reduce them to 8 or 16 bits")
    return Conversion("keep")


def middle_image(source: Source) -> int:
    """The default reference image: the middle of the selected images."""
    return int(source.indices[len(source.indices) // 2])


def choose_window(source: Source, lo: float | None, hi: float | None, reference: int | None, percent: float,
                  method: str = "reference", sample: int = 1) -> Window:
    """Explicit --lo/--hi, else percentiles of the reference image (the middle selected one by
    default) or, with ``method="global"``, of every ``sample``-th selected image."""
    check_percent(percent)
    if lo is not None and hi is not None:
        return resolve_window(lo, hi, None, None, percent)
    if method == "global":
        return with_explicit_sides(global_window(source, percent, sample), lo, hi)
    if method != "reference":
        raise TomotiffError(f"--window must be reference or global, not {method!r}")
    index = middle_image(source) if reference is None else reference
    return resolve_window(lo, hi, source.read_image(index), index, percent)


@dataclass(frozen=True)
class Layout:
    """How the output is laid out: file format, one stack file or one file per image, binning."""

    format: TiffFormat = TiffFormat()
    stack: bool = False
    binning: int = 1

    def describe(self) -> dict:
        return {"compression": self.format.compression, "imagej": self.format.imagej, "stack": self.stack,
                "bin": self.binning}


def extract(source: Source, output_dir: str, pattern: str, conversion: Conversion, workers: int = 1,
            progress: bool = False, manifest_path: str | None = None, warn=print, layout: Layout = Layout()) -> dict:
    """Write the selected images of ``source`` to ``output_dir``; return the manifest written.

    The manifest goes to ``manifest_path`` (default ``output_dir/manifest.json``); the
    workflow's shards, which share a directory, each give their own.
    """
    manifest_path = manifest_path or os.path.join(output_dir, MANIFEST_NAME)
    check_factor(layout.binning, source.image_shape)
    out_dtype = conversion.out_dtype(source.dtype)
    header = {
        "tomotiff_version": __version__,
        **source.describe(),
        "begin": source.begin,
        "stop": source.stop,
        "count": len(source.indices),
        "dtype_in": str(source.dtype),
        "dtype_out": str(out_dtype),
        **conversion.describe(),
        **layout.describe(),
        "output_pattern": pattern,
    }
    image_metadata = {k: v for k, v in header.items() if k not in ("begin", "stop", "count", "output_pattern")}

    def check_saturation(image: np.ndarray) -> None:
        message = saturation_warning(image, conversion.window, int(source.indices[0]))
        if message:
            warn(message)

    prepare_directory(output_dir)
    prepare_directory(os.path.dirname(os.path.abspath(manifest_path)))
    with directory_lock(os.path.dirname(os.path.abspath(manifest_path)), os.path.basename(manifest_path)):
        sink = _sink(source, output_dir, pattern, conversion, layout, out_dtype, image_metadata)
        inspect = check_saturation if conversion.mode == "quantise" else None
        try:
            images = engine.run(source, conversion.transform(source.dtype), out_dtype, sink, workers, progress,
                                inspect, layout.binning)
        except BaseException:
            sink.abort()
            raise
        images = sink.finish(images)
        write_manifest(manifest_path, header, images)
    return {**header, "images": images}


def _sink(source: Source, output_dir: str, pattern: str, conversion: Conversion, layout: Layout,
          out_dtype: np.dtype, metadata: dict) -> TiffSink | StackSink:
    """One file per image, or (``--stack``) one file named as the first image would be."""
    fmt = layout.format
    if fmt.imagej and conversion.mode == "quantise":
        fmt = replace(fmt, display_range=(0, 2**conversion.bits - 1))
    if not layout.stack:
        return TiffSink(output_dir, pattern, metadata, fmt)
    name = format_name(check_pattern(pattern, "-o/--output-pattern"), int(source.indices[0]))
    shape = binned_shape(source.image_shape, layout.binning)
    stack_metadata = {**metadata, "indices": [int(i) for i in source.indices]}
    return StackSink(output_dir, name, stack_metadata, fmt, len(source.indices), shape, out_dtype)
