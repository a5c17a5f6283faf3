"""One job from start to finish, the way every front end runs it (the commands and the workflow's
jobs): open the source, make the plan, choose each window, then for each group of images read
them once and write every product, and the manifests.

source -> plan (selection) -> window -> engine (bin, convert per tile) -> sinks -> manifests
"""

import os
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import replace

import numpy as np

from tomotiff import clipping, engine, manifest
from tomotiff.binning import binned_shape
from tomotiff.calibration import ValueCalibration
from tomotiff.conversion import Conversion, Quantise, crowding_warning, keep_conversion
from tomotiff.files import directory_lock, prepare_directory
from tomotiff.keys import KEY_NAMES
from tomotiff.plan import Group, Plan, Product, Request, make_plan
from tomotiff.selection import ImageSet
from tomotiff.sink import Sink, StackSink, TiffSink
from tomotiff.source import Source
from tomotiff.window import Window, choose_window, saturation_warning

Say = Callable[[str], object]


def run(request: Request, workers: int = 1, progress: bool = False, say: Say = print, warn: Say = print) -> list[dict]:
    """Carry out ``request``; return the manifests written (one per output directory)."""
    with request.source.open() as source:
        for note in source.notes():
            warn(note)
        plan = make_plan(request, source, warn)
        chosen: dict = {}  # several depths through one window request choose it once (a global window: one read)
        conversions = [conversion_of(source, plan, p, progress, say, warn, chosen) for p in request.products]
        inspect = _window_check(plan, conversions, warn)
        return [
            written
            for group in plan.groups
            for written in write_group(source, plan, group, conversions, workers, progress, say, warn, inspect)
        ]


def conversion_of(
    source: Source, plan: Plan, product: Product, progress: bool, say: Say, warn: Say, chosen: dict | None = None
) -> Conversion:
    """The product's per-pixel conversion; a window chosen here is announced and checked.
    ``chosen`` keeps the windows chosen so far by request, with the reference image read."""
    if product.bits not in (8, 16):
        return keep_conversion(source.dtype, fp=product.bits == 32)
    if isinstance(product.window, Window):
        return Quantise(product.bits, product.window)
    chosen = {} if chosen is None else chosen
    if product.window not in chosen:
        read: dict[int, np.ndarray] = {}
        window = choose_window(source, plan.window_images, product.window, progress, read)
        say(window.describe())
        chosen[product.window] = window, read.get(window.reference)
    window, reference = chosen[product.window]
    if reference is not None:  # checked on the reference image, read already
        _warn_about(reference, window.reference, Quantise(product.bits, window), warn)
    return Quantise(product.bits, window)


def _warn_about(image: np.ndarray, index: int, conversion: Quantise, warn: Say) -> None:
    window = conversion.window
    message = saturation_warning(image, window, index) or crowding_warning(image, window, conversion.bits, index)
    if message:
        warn(message)


def _window_check(plan: Plan, conversions: list[Conversion], warn: Say):
    """For windows not chosen from a reference image (given, or global): a check on the first
    candidate image (a raw scan's first projection) the engine reads anyway, or None."""
    unchecked = [c for c in conversions if isinstance(c, Quantise) and c.window.reference is None]
    if not unchecked:
        return None
    candidates = set(plan.window_images.tolist())

    def inspect(first: int, tile: np.ndarray) -> bool:
        found = next((k for k in range(len(tile)) if first + k in candidates), None)
        if found is None:
            return False
        for conversion in unchecked:
            _warn_about(tile[found], first + found, conversion, warn)
        return True

    return inspect


def write_group(
    source: Source,
    plan: Plan,
    group: Group,
    conversions: list[Conversion],
    workers: int,
    progress: bool,
    say: Say,
    warn: Say,
    inspect=None,
) -> list[dict]:
    """Read the group's images once, write each target's images and manifest; return the manifests."""
    request, images = plan.request, group.images
    count = len(images.indices)
    with ExitStack() as held:
        headers, outputs = [], []
        for target, conversion in zip(group.targets, conversions):
            records = os.path.dirname(os.path.abspath(target.manifest))
            for directory in (target.directory, records):
                prepare_directory(directory)
            held.enter_context(directory_lock(records, os.path.basename(target.manifest)))
            header = manifest.header(
                plan.describe(),
                source.begin,
                source.stop,
                count,
                source.dtype,
                conversion.out_dtype(source.dtype),
                conversion.describe(),
                request.layout.describe(),
                request.pattern,
            )
            sink = _sink(source, plan, target.directory, images, conversion, manifest.image_metadata(header))
            headers.append(header)
            outputs.append(engine.Output(conversion, sink, request.layout.binning))
            if count:
                say(
                    f"{plan.source_description['source']}: {_counted(count, 'image')}, {images.first}..{images.last} "
                    f"-> {os.path.join(target.directory, request.pattern)}, {conversion.out_dtype(source.dtype)}, "
                    f"{_counted(workers, 'worker')}; read: {source.read_path}"
                )
        try:
            entries = engine.run(source, images, outputs, workers, progress, inspect)
        except BaseException:
            for output in outputs:
                output.sink.abort()
            raise
        written = []
        for target, header, image_entries in zip(group.targets, headers, entries):
            content = manifest.write_manifest(target.manifest, header, image_entries)
            written.append(content)
            say(f"wrote {_counted(count, 'image')} and {os.path.basename(target.manifest)} to {target.directory}")
            if count:
                clipping.announce(content, f"images {images.first}..{images.last} at {content['bits']} bits", say, warn)
    return written


def _counted(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _sink(source: Source, plan: Plan, directory: str, images: ImageSet, conversion: Conversion, metadata: dict) -> Sink:
    """One file per image, or (``--stack``) one stack named as its first image would be; with the
    pixel size, and for ImageJ the display range, the value calibration and slice labels."""
    layout, pattern = plan.request.layout, plan.request.pattern
    fmt = replace(
        layout.format, pixel_size_um=None if plan.pixel_size is None else plan.pixel_size.binned(layout.binning).um
    )
    if fmt.imagej and isinstance(conversion, Quantise):
        window = conversion.window
        fmt = replace(
            fmt,
            display_range=(0, 2**conversion.bits - 1),
            calibration=ValueCalibration.of(window.lo, window.hi, conversion.bits, plan.value_unit),
        )
    if not layout.stack:
        return TiffSink(directory, pattern, metadata, fmt)
    shape = binned_shape(source.image_shape, layout.binning)
    labels = [_label(int(index), images) for index in images.indices]
    return StackSink(
        directory,
        pattern,
        [int(i) for i in images.indices],
        metadata,
        fmt,
        shape,
        conversion.out_dtype(source.dtype),
        labels,
    )


def _label(index: int, images: ImageSet) -> str:
    """A stack slice's label: its image index, and a raw scan's kind of image."""
    kind = images.origin(index).get("image_key")
    names = {code: name[:-1] for name, code in KEY_NAMES.items()}
    return f"image {index}" if kind is None else f"image {index} ({names.get(kind, f'key {kind}')})"
