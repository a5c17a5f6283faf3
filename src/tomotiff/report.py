"""See the window before trusting it (issue 16): a report made from the files written only.

``tomotiff report DIR...`` writes one self-contained HTML file (every image a PNG data URI, no
script, nothing fetched) with, for each output directory of each scan: the window, how it was
chosen and the mask its percentiles saw, a histogram of the reference image with lo and hi
marked and the clipped sides shaded, the fraction of pixels clipped at 0 and at 2**bits-1 in
each image with the images that drift marked, thumbnails of the first, middle and last images,
a row through the middle of every image stacked over the index, the scan's stats.json and what
``tomotiff verify`` finds. The workflow's report job (:func:`tomotiff.jobs.report`) writes the
same figures as files for Snakemake's own report.

Nothing here reads a source. The clipping comes from manifest.json, exact for every image: the
quantisation counted it while writing (:mod:`tomotiff.clipping`), so no pixel is read for it.
The histogram comes from the workflow's stats.json when there is one (the reference image's
values before quantisation); otherwise from the reference image as written, mapped back to the
data's units with the manifest's lo/hi (values outside the window were clipped when written, so
they appear at lo and hi). Thumbnails and the slice need pixels: they come from the TIFFs, and
large outputs are sampled so a report takes seconds per scan: at most :data:`MAX_IMAGES` images,
evenly spaced, and every Nth row and column of each, at most :data:`MAX_SIDE` a side.
A section stays a few tens of kB (128-pixel thumbnails in 64 greys, small plots in 64 colours),
so a report of hundreds of scans still opens; each scan is a collapsible ``<details>`` listed in a table of
contents that shows each output's window, mask, worst clipping, drift and verify result at a glance.
"""

import base64
import html
import io
import itertools
import json
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from tomotiff import __version__, clipping
from tomotiff.batch import DEPTHS, KINDS
from tomotiff.errors import TomotiffError
from tomotiff.files import write_atomically
from tomotiff.keys import KEY_NAMES
from tomotiff.manifest import MANIFEST_NAME, read_json, read_manifest, verify
from tomotiff.mask import Mask
from tomotiff.quantisation import dequantise
from tomotiff.window import Window, finite_pixels

STATS_NAME = "stats.json"
FIGURES = ("histogram", "clipping", "thumbnails", "slice")
MAX_IMAGES = 512  # images read for the slice, evenly spaced over the output
MAX_SIDE = 512  # pixels read along each side of an image (every Nth row and column)
THUMBNAIL = 128  # pixels along the longer side of a thumbnail
SLICE = 160  # pixels along each side of the orthogonal slice
GREYS = 64  # grey levels in thumbnails and slices
DPI = 96
PLOT = (3.4, 1.6)  # inches: 326 x 154 pixels at DPI
MAX_PROBLEMS = 20  # verify problems listed per output; the rest are counted
HILO_RGB = {"under": [0, 0, 255], "over": [255, 0, 0]}  # ImageJ's HiLo: pixels at 0 blue, at 2**bits-1 red
HILO = {name: "#{:02x}{:02x}{:02x}".format(*rgb) for name, rgb in HILO_RGB.items()}
DRIFT_COLOUR = "#e8a200"  # amber: the images tomotiff.clipping flags as drifting


# --- what a report covers ------------------------------------------------------------------


@dataclass(frozen=True)
class Output:
    """One directory of images with its manifest.json: a bit depth of a scan, or a kind of image
    below it (``label``: ``u8``, ``u8/flats``; a command's own directory is labelled by its depth)."""

    label: str
    directory: str


@dataclass(frozen=True)
class Scan:
    """One scan: its statistics (the workflow's stats.json, if any) and its outputs."""

    name: str
    stats: dict | None
    outputs: tuple[Output, ...]


def find_scans(directory: str) -> list[Scan]:
    """The scans in ``directory``: a command's output directory (a scan of one output, or of one
    per kind with --split-keys), a scan of the workflow (results/SCAN) or the workflow's results/
    (each SCAN/ in it). Hidden directories (the workflow's .work/) are bookkeeping, not outputs."""
    if not os.path.isdir(directory):
        raise TomotiffError(f"no such directory: {directory}")
    if _is_scan(directory):
        return [_scan(os.path.normpath(directory), directory)]
    children = sorted(
        entry.name for entry in os.scandir(directory) if entry.is_dir() and not entry.name.startswith(".")
    )
    scans = [_scan(name, os.path.join(directory, name)) for name in children if _is_scan(os.path.join(directory, name))]
    if not scans:
        raise TomotiffError(
            f"{directory}: no {MANIFEST_NAME} in it, in DEPTH/ or in SCAN/DEPTH/; give an output "
            "directory of nxs2tiff, nxs2tiffux, tiff2tiffux or tomotiff's workflow, or its results/"
        )
    return scans


def _is_scan(directory: str) -> bool:
    return os.path.isfile(os.path.join(directory, STATS_NAME)) or bool(_output_paths(directory))


def _output_paths(directory: str) -> list[str]:
    """Where manifests lie in a scan's directory: itself, KIND/ (--split-keys), DEPTH/, DEPTH/KIND/."""
    depths = DEPTHS.values()
    places = [".", *KINDS, *depths, *(f"{depth}/{kind}" for depth in depths for kind in KINDS)]
    return [place for place in places if os.path.isfile(os.path.join(directory, place, MANIFEST_NAME))]


def _scan(name: str, directory: str) -> Scan:
    stats_path = os.path.join(directory, STATS_NAME)
    stats = read_json(stats_path) if os.path.isfile(stats_path) else None
    outputs = tuple(
        Output(place, os.path.normpath(os.path.join(directory, place))) for place in _output_paths(directory)
    )
    return Scan(name, stats, outputs)


def workflow_scan(name: str, stats_path: str, manifest_paths: list[str]) -> Scan:
    """A scan of the workflow from its job's inputs: results/SCAN/stats.json and the manifests."""
    root = os.path.dirname(stats_path)
    outputs = tuple(
        Output(os.path.relpath(os.path.dirname(path), root), os.path.dirname(path)) for path in manifest_paths
    )
    return Scan(name, read_json(stats_path), outputs)


# --- reading what was written --------------------------------------------------------------


@dataclass
class Measures:
    """What one pass over an output's TIFFs found (``indices``: the images read, in order)."""

    indices: list[int] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    thumbnails: dict[int, np.ndarray] = field(default_factory=dict)
    reference: np.ndarray | None = None
    unreadable: list[int] = field(default_factory=list)
    step: int = 1  # every step-th row and column was read
    row: int = 0  # the row the slice goes through


def sampled(count: int, limit: int = MAX_IMAGES) -> list[int]:
    """Positions of at most ``limit`` images evenly spaced over ``count``, first, middle and last included."""
    if count <= limit:
        return list(range(count))
    spaced = np.linspace(0, count - 1, limit - 1).round().astype(int)
    return sorted({*spaced.tolist(), count // 2})


def _images(directory: str, entries: list[dict]) -> Iterator[tuple[dict, np.ndarray | None]]:
    """Each entry's pixels, or None when its file is missing or unreadable (verify says which).
    Each file is opened once (a stack holds every image)."""
    import tifffile

    for name, group in itertools.groupby(entries, key=lambda entry: entry["file"]):
        in_file, done = list(group), 0
        try:
            with tifffile.TiffFile(os.path.join(directory, name)) as tif:
                page = _reader(tif)
                for entry in in_file:
                    yield entry, page(entry.get("page", 0))
                    done += 1
        except (OSError, ValueError, IndexError):  # tifffile's TiffFileError is a ValueError
            for entry in in_file[done:]:
                yield entry, None


def _reader(tif) -> Callable[[int], np.ndarray]:
    """Page N of an open TIFF: memory-mapped when uncompressed, so that reading every Nth row
    reads only those rows; else decoded page by page (a compressed stack is never read whole)."""
    series = tif.series[0]
    if series.dataoffset is None:
        return lambda page: tif.pages[page].asarray()
    data = np.memmap(
        tif.filehandle.path,
        dtype=series.dtype.newbyteorder(tif.byteorder),
        mode="r",
        offset=series.dataoffset,
        shape=series.shape,
    ).reshape(-1, *series.shape[-2:])
    return lambda page: data[page]


def measure(directory: str, entries: list[dict], reference: int | None) -> Measures:
    """Middle rows and thumbnails of the sampled images (and, when asked, the reference image in
    full) in one pass over the files: what the report shows that the manifest cannot tell."""
    found = Measures()
    positions = sampled(len(entries))
    wanted = {entries[i]["index"] for i in (0, len(entries) // 2, len(entries) - 1)} if entries else set()
    for entry, pixels in _images(directory, [entries[i] for i in positions]):
        index = entry["index"]
        if pixels is None:
            found.unreadable.append(index)
            continue
        found.step = max(1, math.ceil(max(pixels.shape) / MAX_SIDE))
        found.row = pixels.shape[0] // 2
        found.indices.append(index)
        found.rows.append(np.array(pixels[found.row, :: found.step]))
        if index in wanted:
            found.thumbnails[index] = downsample(pixels, THUMBNAIL)
        if index == reference:
            found.reference = np.array(pixels)
    return found


@dataclass(frozen=True)
class Clipped:
    """An output's clipping as its manifest records it: each image's fractions at 0 and at the
    top (exact, counted when it was written) for the images its summary counts, and the summary."""

    indices: np.ndarray
    at_0: np.ndarray
    at_top: np.ndarray
    summary: dict  # the manifest header's "clipping" (tomotiff.clipping.summary)
    left_out: int  # images listed but not counted: a raw scan's darks and flats

    @property
    def peaks(self) -> tuple[int, int]:
        """The images with the largest fraction at 0 and at the top (the first of equals)."""
        return int(self.indices[np.argmax(self.at_0)]), int(self.indices[np.argmax(self.at_top)])


def clipped_of(manifest: dict) -> Clipped | None:
    """The manifest's clipping, or None when it records none (float output, or an older tomotiff).
    For a raw scan written in one directory only the projections, as its summary (which exists
    only when some image it counts has figures): darks at 0 and flats near the top by nature
    would fill the plot's scale and hide the projections'."""
    summary = manifest.get("clipping")
    if not summary:
        return None
    counted = [entry for entry in manifest["images"] if "clipped" in entry]
    if summary["of"] == "projections":
        counted = [entry for entry in counted if entry.get("image_key") == KEY_NAMES["projections"]]
    fractions = np.array([[entry["clipped"]["at_0"], entry["clipped"]["at_top"]] for entry in counted]).reshape(-1, 2)
    indices = np.array([entry["index"] for entry in counted], int)
    return Clipped(indices, fractions[:, 0], fractions[:, 1], summary, len(manifest["images"]) - len(counted))


def downsample(image: np.ndarray, limit: int, keep_aspect: bool = True) -> np.ndarray:
    """The mean of blocks of pixels, so that no side exceeds ``limit`` (float64; NaN stays NaN)."""
    factors = np.maximum(1, np.ceil(np.array(image.shape[:2]) / limit).astype(int))
    if keep_aspect:
        factors = np.minimum(factors.max(), image.shape[:2])  # a side shorter than the block is one block
    height, width = (np.array(image.shape[:2]) // factors) * factors
    blocks = np.asarray(image[:height, :width], np.float64)
    return blocks.reshape(height // factors[0], factors[0], width // factors[1], factors[1]).mean(axis=(1, 3))


# --- figures: plots drawn by matplotlib (Agg), images as palette PNGs -----------------------


@dataclass(frozen=True)
class Picture:
    """A figure: its PNG, what it shows, and its size on screen in CSS pixels (a small image is
    enlarged by the page, not in the file)."""

    png: bytes
    note: str
    width: int
    height: int


def _figure(width: float, height: float):
    """A figure drawn by Agg outside pyplot (nothing global changes, no window opens), with
    fixed margins (constrained layout would double the time a plot takes)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError:
        raise TomotiffError("tomotiff report draws its plots with matplotlib: pip install matplotlib") from None
    figure = Figure(figsize=(width, height), dpi=DPI)
    FigureCanvasAgg(figure)
    figure.subplots_adjust(left=0.16, right=0.95, bottom=0.24, top=0.88)  # room for the tick labels at the ends
    return figure


def _plot(figure, note: str) -> Picture:
    """The figure as a PNG of at most 64 colours: a third of the bytes of matplotlib's RGBA."""
    from PIL import Image

    figure.canvas.draw()
    image = Image.fromarray(np.asarray(figure.canvas.buffer_rgba())[..., :3])
    return Picture(_png(image.quantize(64, method=Image.Quantize.MEDIANCUT)), note, image.width, image.height)


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def _axes(figure, title: str, xlabel: str, ylabel: str):
    from matplotlib.ticker import MaxNLocator

    axes = figure.add_subplot()
    axes.set_title(title, fontsize=8)
    axes.set_xlabel(xlabel, fontsize=7)
    axes.set_ylabel(ylabel, fontsize=7)
    axes.tick_params(labelsize=7)
    axes.xaxis.set_major_locator(MaxNLocator(6))
    return axes


def histogram_picture(
    counts: list[int],
    edges: list[float],
    window: tuple[float, float] | None,
    title: str,
    note: str,
    clipped_at_ends: bool = False,
) -> Picture:
    """The histogram (log counts) with lo and hi marked and what lies beyond them shaded; with
    ``clipped_at_ends`` (a histogram of quantised values) its first and last bins, where the
    clipped pixels are, in the clipped colours."""
    figure = _figure(*PLOT)
    if window is not None:
        title += f": lo {window[0]:.4g}, hi {window[1]:.4g}"
    axes = _axes(figure, title, "value", "pixels")
    counts = np.maximum(counts, 0.5)
    axes.stairs(counts, edges, fill=True, color="#555555", baseline=0.5)
    if clipped_at_ends:
        axes.stairs(counts[:1], edges[:2], fill=True, color=HILO["under"], baseline=0.5)
        axes.stairs(counts[-1:], edges[-2:], fill=True, color=HILO["over"], baseline=0.5)
    _log_counts(axes)
    left, right = edges[0], edges[-1]
    if window is not None:
        lo, hi = window
        pad = 0.03 * (max(right, hi) - min(left, lo))
        left, right = min(left, lo) - pad, max(right, hi) + pad
        axes.axvspan(left, lo, color=HILO["under"], alpha=0.15, lw=0)
        axes.axvspan(hi, right, color=HILO["over"], alpha=0.15, lw=0)
        axes.axvline(lo, color=HILO["under"], lw=1.2)
        axes.axvline(hi, color=HILO["over"], lw=1.2)
    axes.set_xlim(left, right)
    axes.set_ylim(bottom=0.5)
    return _plot(figure, note)


def _log_counts(axes) -> None:
    """A log axis of counts labelled 1, 10, 100, 1e+03 (matplotlib's 10^n labels are mathtext,
    which takes half the time of the whole plot), without minor ticks."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    axes.set_yscale("log")
    axes.yaxis.set_major_locator(LogLocator(numticks=4))
    axes.yaxis.set_minor_locator(NullLocator())
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:.3g}"))


def clipping_picture(clipped: Clipped, bits: int) -> Picture:
    """Percent of pixels at 0 and at 2**bits-1 against the image index, every image counted; the
    drifting images in amber: a band over each run of them, and rings on their points (a band
    one image wide among thousands is thinner than a pixel)."""
    drift = clipped.summary["drift"]["images"]
    title = f"pixels at 0 (blue) and at {2**bits - 1} (red)" + (", drift amber" if drift else "")
    figure = _figure(*PLOT)
    axes = _axes(figure, title, "image index", "% of pixels")
    axes.xaxis.get_major_locator().set_params(integer=True)
    for first, last in _runs(drift):
        axes.axvspan(first - 0.5, last + 0.5, color=DRIFT_COLOUR, alpha=0.3, lw=0)
    style = {"lw": 1, "marker": "." if len(clipped.indices) < 64 else None, "ms": 3}
    drifting = np.isin(clipped.indices, drift)
    for values, colour in ((clipped.at_0, HILO["under"]), (clipped.at_top, HILO["over"])):
        axes.plot(clipped.indices, 100 * values, color=colour, **style)
        axes.plot(
            clipped.indices[drifting], 100 * values[drifting], ls="", marker="o", mfc="none", mec=DRIFT_COLOUR, ms=4
        )
    clipped_any = clipped.at_0.any() or clipped.at_top.any()
    axes.set_ylim(0, None if clipped_any else 1)  # nothing clipped: a line on 0, not an axis of noise-sized ticks
    return _plot(figure, _clipping_note(clipped))


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """``[6, 7, 8, 15]`` as ``[(6, 8), (15, 15)]``: the first and last index of each run."""
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and index == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


def palette(bits: int | None) -> list[int]:
    """256 greys; for quantised images ImageJ's HiLo: level 0 (clipped low) blue, 255 (clipped high) red."""
    levels = [value for grey in range(256) for value in (grey, grey, grey)]
    if bits:
        levels[:3], levels[-3:] = HILO_RGB["under"], HILO_RGB["over"]
    return levels


def levels(image: np.ndarray, bits: int | None, span: tuple[float, float]) -> np.ndarray:
    """Palette indices: span[0] black to span[1] white in :data:`GREYS` steps (on 1..253: noise
    in fewer levels compresses to half the bytes, and a thumbnail shows no more), NaN black. For
    quantised images a block averaging within half a level of 0 or of the top is clipped: 0 or 255."""
    low, high = span
    steps = np.rint(np.clip((image - low) / (high - low), 0, 1) * (GREYS - 1))
    indices = np.nan_to_num(1 + steps * (252 // (GREYS - 1)), nan=0).astype(np.uint8)
    if bits:
        indices[image < 0.5] = 0
        indices[image > high - 0.5] = 255
    return indices


def display_span(bits: int | None, sample: np.ndarray) -> tuple[float, float]:
    """What black and white stand for: 0 and 2**bits-1 for quantised images; else the 1st and
    99th percentiles of ``sample``'s finite values."""
    if bits:
        return 0.0, float(2**bits - 1)
    values = finite_pixels(sample)
    low, high = (float(v) for v in np.percentile(values, [1, 99])) if values.size else (0.0, 1.0)
    return low, high if high > low else low + 1


def raster_picture(indices: np.ndarray, bits: int | None, note: str, box: tuple[int, int]) -> Picture:
    """An 8-bit palette PNG of palette indices, shown enlarged (aspect kept) to fit ``box`` (width, height)."""
    from PIL import Image

    image = Image.fromarray(np.ascontiguousarray(indices), mode="L").convert("P")
    image.putpalette(palette(bits))
    scale = max(1.0, min(box[0] / image.width, box[1] / image.height))
    return Picture(_png(image), note, round(image.width * scale), round(image.height * scale))


def thumbnails_picture(thumbnails: dict[int, np.ndarray], bits: int | None) -> Picture:
    """The first, middle and last images side by side, in that order, a white gap between them."""
    ordered = [thumbnails[index] for index in sorted(thumbnails)]
    span = display_span(bits, ordered[len(ordered) // 2])
    tiles = [levels(image, bits, span) for image in ordered]
    gap = np.full((tiles[0].shape[0], 2), 254, np.uint8)
    strip = np.hstack([part for tile in tiles for part in (gap, tile)][1:])
    shown = ", ".join(str(index) for index in sorted(thumbnails))
    note = f"images {shown} (first, middle, last){'' if bits else _FLOAT_NOTE}"
    return raster_picture(strip, bits, note, (len(tiles) * THUMBNAIL, THUMBNAIL))


def slice_picture(found: Measures, bits: int | None) -> Picture:
    """Row ``found.row`` of every image read, stacked over the index (top: the first image): a
    sinogram for projections, a section across the slices for a reconstruction."""
    section = downsample(np.stack(found.rows), SLICE, keep_aspect=False)
    note = (
        f"row {found.row} of each image read, images {found.indices[0]} (top) to {found.indices[-1]} (bottom)"
        f"{'' if bits else _FLOAT_NOTE.replace('image', 'slice')}"
    )
    return raster_picture(levels(section, bits, display_span(bits, section)), bits, note, (2 * SLICE, SLICE))


_FLOAT_NOTE = "; black to white: the 1st to the 99th percentile of the middle image"


# --- one output: its window, figures and verify result -------------------------------------


@dataclass(frozen=True)
class Section:
    """Everything shown for one output, and no more: a report of hundreds of scans holds every
    section until the page is written (the pixels read and the images listed are left behind)."""

    scan: Scan
    output: Output
    header: dict  # the manifest without its images
    count: int  # images listed
    problems: list[str]
    figures: dict[str, Picture]
    peaks: tuple[int, int] | None  # the images most clipped at 0 and at 2**bits-1 (Clipped.peaks)
    unreadable: list[int]

    @property
    def bits(self) -> int | None:
        return self.header.get("bits")

    @property
    def window(self) -> tuple[float, float] | None:
        return (self.header["lo"], self.header["hi"]) if self.bits else None

    @property
    def clipping(self) -> dict | None:
        """The manifest's clipping summary (None for float output, or from an older tomotiff)."""
        return self.header.get("clipping")


def depth_label(manifest: dict) -> str:
    """u8, u16 or f32 as the workflow names them (a command's non-float output: its dtype)."""
    if manifest.get("bits"):
        return f"u{manifest['bits']}"
    return "f32" if manifest.get("dtype_out") == "float32" else str(manifest.get("dtype_out"))


def section(scan: Scan, output: Output) -> Section:
    """Read the output's manifest and files once, and draw its figures."""
    manifest = read_manifest(os.path.join(output.directory, MANIFEST_NAME))
    if output.label == ".":
        output = Output(depth_label(manifest), output.directory)
    problems = verify(output.directory)
    entries = manifest["images"]
    bits = manifest.get("bits")
    reference = _reference(manifest)
    found = measure(output.directory, entries, None if _stats_histogram(scan.stats) else reference)
    clipped = clipped_of(manifest) if bits else None
    figures = {}
    histogram = _histogram(scan.stats, manifest, found, reference)
    if histogram:
        figures["histogram"] = histogram
    if clipped:
        figures["clipping"] = clipping_picture(clipped, bits)
    if found.thumbnails:
        figures["thumbnails"] = thumbnails_picture(found.thumbnails, bits)
    if len(found.indices) > 1:
        figures["slice"] = slice_picture(found, bits)
    peaks = clipped.peaks if clipped else None
    header = {key: value for key, value in manifest.items() if key != "images"}
    return Section(scan, output, header, len(entries), problems, figures, peaks, found.unreadable)


def _reference(manifest: dict) -> int | None:
    """The window's reference image when it was written, else the middle image written."""
    entries = manifest["images"]
    indices = {entry["index"] for entry in entries}
    chosen = (manifest.get("window") or {}).get("reference")
    if chosen in indices:
        return chosen
    return entries[len(entries) // 2]["index"] if entries else None


def _histogram(stats: dict | None, manifest: dict, found: Measures, reference: int | None) -> Picture | None:
    """The reference image's histogram: stats.json's (values before quantisation) when there is
    one, else the reference TIFF's, mapped back with lo/hi (clipped values then sit at lo and hi)."""
    bits = manifest.get("bits")
    window = (manifest["lo"], manifest["hi"]) if bits else None
    histogram = _stats_histogram(stats)
    if histogram:
        return histogram_picture(
            histogram["counts"],
            histogram["edges"],
            window,
            f"image {stats['reference']}",
            f"reference image {stats['reference']} as read from the source, before "
            f"quantisation: {histogram['bins']} bins from stats.json{_masked(stats.get('mask'))}",
        )
    if found.reference is None:
        return None
    values = finite_pixels(found.reference if not bits else dequantise(found.reference, *window, bits))
    if values.size == 0:
        return None
    span = window or (float(values.min()), float(values.max()))
    counts, edges = np.histogram(values, bins=256, range=span if span[1] > span[0] else None)
    mapped = (
        (
            " mapped back with lo/hi (x = lo + q (hi - lo) / (2**bits - 1)): values beyond the window were "
            "clipped when written and count in the first (blue) and last (red) bins"
        )
        if bits
        else ""
    )
    return histogram_picture(
        counts.tolist(),
        edges.tolist(),
        window,
        f"image {reference} as written",
        f"image {reference}, from its TIFF{mapped}",
        clipped_at_ends=bool(bits),
    )


def _masked(record: dict | None) -> str:
    """Which pixels stats.json's histogram counts, when its mask left some out."""
    return f", of the pixels {_mask_words(record)}" if record else ""


def _stats_histogram(stats: dict | None) -> dict | None:
    """stats.json's histogram, when there is one with counts (an image without a finite pixel has none)."""
    return stats["histogram"] if stats and stats["histogram"]["counts"] else None


def _clipping_note(clipped: Clipped) -> str:
    counted = f"each of the {clipped.indices.size} {_noun(clipped.summary)}"
    left_out = f" (the {clipped.left_out} darks and flats are left out, as in the summary)" if clipped.left_out else ""
    none = "; no pixel at either end in any of them" if not clipped.at_0.any() and not clipped.at_top.any() else ""
    drift = clipping.spans(clipped.summary["drift"]["images"])
    drifting = f"; amber: drift, images {drift}" if drift else ""
    return (
        f"percent of pixels at 0 and at the top grey level in {counted}{left_out}, exact: counted when written, "
        f"from {MANIFEST_NAME}{none}{drifting}"
    )


# --- HTML ----------------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _figure_html(name: str, sect: Section) -> str:
    if name not in sect.figures:
        return ""
    picture = sect.figures[name]
    return (
        f'<figure class="{name}"><img class="{name}" src="{data_uri(picture.png)}" width="{picture.width}" '
        f'height="{picture.height}" alt="{_e(name)} of {_e(sect.scan.name)} {_e(sect.output.label)}">'
        f"<figcaption>{_e(picture.note)}</figcaption></figure>"
    )


def _window_rows(sect: Section) -> list[tuple[str, str, str]]:
    """(header, value, class) rows: the window exactly as recorded (repr: every digit), how it was
    chosen and the pixels its percentiles saw."""
    manifest = sect.header
    if not sect.bits:
        return [("window", f"none: {manifest.get('dtype_out')} values kept ({manifest.get('formula', '')})", "")]
    return [
        ("lo", repr(manifest["lo"]), "lo"),
        ("hi", repr(manifest["hi"]), "hi"),
        ("chosen", _chosen(manifest), "how"),
        ("mask", _mask_words(_window_record(manifest)["mask"]), "mask"),
        ("bits", str(sect.bits), ""),
        ("formula", str(manifest.get("formula_name", "")), ""),
    ]


def _window_record(manifest: dict) -> dict:
    """The manifest's window record, every field present (an older manifest may lack some)."""
    recorded = manifest.get("window") or {"lo": manifest["lo"], "hi": manifest["hi"], "method": "explicit"}
    return Window(**recorded).as_dict()


def _chosen(manifest: dict) -> str:
    """How the window was chosen, in the words the runs' logs use (Window.describe), but for the
    mask, which has its own row and column."""
    if not manifest.get("bits"):
        return ""
    window = Window(**{**_window_record(manifest), "mask": None})
    return window.describe().split(" (", 1)[-1].removesuffix(")")


def _mask_words(record: dict | None) -> str:
    """A window's mask as its log line words it ("inside the field-of-view circle, leaving out 0")."""
    if not record:
        return "none (every pixel)"
    return Mask(record["circle"], tuple(float(value) for value in record["values"])).describe().removeprefix(", ")


def _mask_short(record: dict | None) -> str:
    """A window's mask in a table of contents' cell: ``circle``, ``circle, not 0, nan``, ``none``."""
    if not record:
        return "none"
    values = ", ".join(f"{float(value):g}" for value in record["values"])
    return ", ".join([*(["circle"] if record["circle"] else []), *([f"not {values}"] if values else [])])


def _verify_html(sect: Section) -> str:
    count = sect.count
    if not sect.problems:
        return f'<p class="verify ok">verify: all {count} images present and matching {MANIFEST_NAME}</p>'
    listed = "".join(f"<li>{_e(problem)}</li>" for problem in sect.problems[:MAX_PROBLEMS])
    more = f"<li>and {len(sect.problems) - MAX_PROBLEMS} more</li>" if len(sect.problems) > MAX_PROBLEMS else ""
    return (
        f'<div class="verify bad"><p>verify: {len(sect.problems)} problem(s) among {count} images; '
        f"rerun the extraction to restore them</p><ul>{listed}{more}</ul></div>"
    )


def _clipping_html(sect: Section) -> str:
    """The manifest's clipping summary: median and most clipped image at each end, what it is
    over (a raw scan's projections only), NaN pixels, and the images that drift."""
    found, bits = sect.clipping, sect.bits
    if not bits:
        return ""
    if not found:
        return (
            f'<p class="clipping">clipping: not recorded in {MANIFEST_NAME} (written by a tomotiff that did not '
            "count it); convert again to see it</p>"
        )
    peaks = sect.peaks  # present with the summary: the images it was made of
    cells = [
        (f"at {level}", _percent(found[side]["median"]), _most(found[side]["max"], peak), side)
        for side, level, peak in (("at_0", 0, peaks[0]), ("at_top", 2**bits - 1, peaks[1]))
    ]
    rows = "".join(
        f'<tr><th>{_e(head)}</th><td>{_e(median)}</td><td class="max {side}">{_e(most)}</td></tr>'
        for head, median, most, side in cells
    )
    left_out = sect.count - found["images"]
    of = (
        f"the {found['images']} projections (the {left_out} darks and flats left out: they sit at 0 and near the "
        "top by nature)"
        if left_out
        else f"all {found['images']} {_noun(found)}"
    )
    nan = found["nan"]
    nans = f"; {nan['pixels']} NaN pixels (written as 0) in {nan['images']} images" if nan["pixels"] else ""
    return (
        f'<table class="clipping"><tr><th>clipped</th><th>median</th><th>most</th></tr>{rows}</table>'
        f'<p class="clipping-of">per image, over {_e(of)}: exact, counted when written{_e(nans)}</p>'
        f"{_drift_html(found, bits)}"
    )


def _most(fraction: float, image: int) -> str:
    """The largest fraction clipped, and in which image (when any pixel is)."""
    return f"{_percent(fraction)} (image {image})" if fraction else _percent(fraction)


def _drift_html(found: dict, bits: int) -> str:
    """The images whose clipping strays from the median image's (tomotiff.clipping.drifting)."""
    images = found["drift"]["images"]
    margin = (
        f"share of pixels at 0 or at {2**bits - 1} differs from the median image's by more than "
        f"{100 * found['drift']['threshold']:g} points"
    )
    if not images:
        return f'<p class="drift ok">drift: none (no image\'s {_e(margin)})</p>'
    return (
        f'<p class="drift bad">drift: {len(images)} of {found["images"]} {_noun(found)} '
        f"({_e(clipping.spans(images))}): their {_e(margin)}. The brightness changes across the scan under one "
        "window (a refill, a shutter): look at them before trusting the window.</p>"
    )


def _noun(found: dict) -> str:
    return "projections" if found["of"] == "projections" else "images"


def _section_html(sect: Section, anchor: str) -> str:
    rows = "".join(
        f'<tr><th>{_e(head)}</th><td class="{css}">{_e(value)}</td></tr>' for head, value, css in _window_rows(sect)
    )
    header = sect.header
    source = header.get("source") or header.get("input_pattern") or ""
    facts = f"{sect.count} images, {_e(header.get('dtype_in'))} to {_e(header.get('dtype_out'))}, from {_e(source)}"
    figures = "".join(_figure_html(name, sect) for name in FIGURES)
    unreadable = clipping.spans(sect.unreadable)
    missing = f'<p class="bad">unreadable: images {_e(unreadable)}</p>' if sect.unreadable else ""
    name, label = _e(sect.scan.name), _e(sect.output.label)
    return (
        f'<section class="output" id="{anchor}" data-scan="{name}" data-output="{label}">'
        f'<h3>{name} {label}</h3><p class="dir">{_e(sect.output.directory)}: {facts}</p>'
        f'<div class="figures"><div class="facts"><table class="window">{rows}</table>{_clipping_html(sect)}'
        f"{_verify_html(sect)}{missing}</div>{figures}</div>"
        "</section>"
    )


def stats_rows(stats: dict) -> list[tuple[str, str]]:
    """stats.json as rows, one level of nesting flattened (``percentiles.99.9``); the histogram by
    its size; the mask, each window and each output's clipping in the words of the runs' logs."""
    rows = []
    for key, value in sorted(stats.items()):
        if key == "histogram":
            rows.append((key, f"{value['bins']} bins"))
        elif key == "mask":
            rows.append((key, _mask_words(value)))
        elif key == "windows":
            rows.extend(
                (f"{key}.{name}", Window(**window).describe().removeprefix("window: "))
                for name, window in value.items()
            )
        elif key == "clipping":
            rows.extend((f"{key}.{name}", _clipping_words(found, name)) for name, found in value.items())
        elif isinstance(value, dict):
            rows.extend((f"{key}.{inner}", _text(item)) for inner, item in value.items())
        else:
            rows.append((key, _text(value)))
    return rows


def _clipping_words(found: dict, output: str) -> str:
    """An output's clipping summary (``output``: u8, or u8/projections) as its run's log says it, and its drift."""
    bits = next(bits for bits, depth in DEPTHS.items() if output.split("/")[0] == depth)
    drift = clipping.spans(found["drift"]["images"]) or "none"
    return f"{clipping.described(found, bits)}; over {found['images']} {_noun(found)}; drift: {drift}"


def _text(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{key} {_text(item)}" for key, item in value.items() if item is not None)
    return json.dumps(value) if isinstance(value, list) else repr(value) if isinstance(value, float) else str(value)


def _stats_html(stats: dict | None) -> str:
    if not stats:
        return '<p class="nostats">no stats.json (not a workflow scan): histograms come from the TIFFs written</p>'
    rows = "".join(f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>" for key, value in stats_rows(stats))
    told = f"reference image {stats.get('reference')}, mask: {_mask_words(stats.get('mask'))}"
    return f'<details class="stats"><summary>stats.json: {_e(told)}</summary><table>{rows}</table></details>'


def _verdict(sections: list[Section]) -> str:
    bad = sum(1 for sect in sections if sect.problems)
    return "verify OK" if not bad else f"verify: problems in {bad} output(s)"


def _scan_html(number: int, scan: Scan, sections: list[Section], open_: bool) -> str:
    body = "".join(_section_html(sect, f"s{number}-{n}") for n, sect in enumerate(sections))
    labels = ", ".join(sect.output.label for sect in sections)
    drifting = ", ".join(sect.output.label for sect in sections if sect.clipping and sect.clipping["drift"]["images"])
    drift = f'; <span class="bad">drift in {_e(drifting)}</span>' if drifting else ""
    return (
        f'<details class="scan" id="s{number}" data-scan="{_e(scan.name)}"{" open" if open_ else ""}>'
        f"<summary><h2>{_e(scan.name)}</h2> <span>{_e(labels)}; {_e(_verdict(sections))}{drift}</span></summary>"
        f"{_stats_html(scan.stats)}{body}</details>"
    )


def _percent(value: float) -> str:
    return f"{100 * value:.3g}%"


TOC_HEAD = ("scan", "output", "lo", "hi", "chosen", "mask", "most clipped at 0 / top", "drift", "verify")


def _toc_cells(sect: Section) -> list[tuple[str, str]]:
    """(text, class) of an output's cells after its name: window, mask, clipping, drift, verify."""
    lo, hi = (repr(value) for value in sect.window) if sect.window else ("", "")
    mask = _mask_short(_window_record(sect.header)["mask"]) if sect.bits else ""
    found = sect.clipping
    if found:
        over = " (projections)" if found["images"] < sect.count else ""  # a raw scan's darks and flats left out
        clip = f"{_percent(found['at_0']['max'])} / {_percent(found['at_top']['max'])}{over}"
        drift = clipping.spans(found["drift"]["images"])
    else:
        clip, drift = ("not recorded" if sect.bits else ""), ""
    verified = "OK" if not sect.problems else f"{len(sect.problems)} problem(s)"
    return [
        (lo, ""),
        (hi, ""),
        (_chosen(sect.header), ""),
        (mask, ""),
        (clip, ""),
        (drift or ("none" if found else ""), "bad" if drift else ""),
        (verified, "bad" if sect.problems else "ok"),
    ]


def _toc_html(scans: list[tuple[Scan, list[Section]]]) -> str:
    rows = []
    for number, (scan, sections) in enumerate(scans):
        for n, sect in enumerate(sections):
            name = f'<td rowspan="{len(sections)}"><a href="#s{number}">{_e(scan.name)}</a></td>' if n == 0 else ""
            cells = "".join(f'<td class="{css}">{_e(text)}</td>' for text, css in _toc_cells(sect))
            rows.append(f'<tr>{name}<td><a href="#s{number}-{n}">{_e(sect.output.label)}</a></td>{cells}</tr>')
    head = "".join(f"<th>{name}</th>" for name in TOC_HEAD)
    return f'<table class="toc"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1150px}
h1{font-size:1.4em}h2{display:inline;font-size:1.15em}h3{font-size:1em;margin:.4em 0}
table{border-collapse:collapse;margin:.4em 0}th,td{border:1px solid #ccc;padding:2px 6px;text-align:left;
font-size:12px;vertical-align:top}th{background:#f3f3f3;font-weight:600}
details.scan{border:1px solid #bbb;border-radius:4px;margin:.5em 0;padding:.3em .6em}
details.scan>summary{cursor:pointer}summary span{color:#555}
section.output{border-top:1px solid #ddd;margin-top:.6em;padding-top:.3em}
.figures{display:flex;flex-wrap:wrap;gap:10px;align-items:flex-start}figure{margin:0;max-width:390px}
figure img{border:1px solid #eee}figure.thumbnails img,figure.slice img{image-rendering:pixelated}
figcaption{font-size:11px;color:#555}
.ok{color:#176b17}.bad{color:#b00000}.verify.bad{background:#fff0f0;padding:2px 6px}
.dir{font-size:12px;color:#555;word-break:break-all}.facts{max-width:360px}.facts p{font-size:12px;margin:.3em 0}
.drift.bad{background:#fff3d6;border-left:4px solid #e8a200;padding:2px 6px;color:#222}
"""


def render(scans: list[Scan], sections: list[list[Section]], title: str) -> str:
    """The whole report: a table of contents, then one collapsible section per scan (open when
    there is one scan only: a long report opens quickly and is read scan by scan)."""
    pairs = list(zip(scans, sections))
    body = "".join(_scan_html(number, scan, sects, len(scans) == 1) for number, (scan, sects) in enumerate(pairs))
    outputs = sum(len(sects) for sects in sections)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head><body>'
        f"<h1>{_e(title)}</h1><p>{len(scans)} scan(s), {outputs} output(s); made by tomotiff {_e(__version__)} "
        f"from the files written. {_e(_verdict([s for sects in sections for s in sects]))}.</p>"
        f"{_LEGEND}{_toc_html(pairs)}{body}</body></html>\n"
    )


_LEGEND = (
    '<p class="legend">For each output: its window (lo is written as 0, hi as 2**bits-1) and how it was '
    "chosen, the mask its percentiles saw, its clipping and what <code>tomotiff verify</code> finds; the "
    "reference image's histogram, lo and hi marked, what lies beyond them shaded (from the workflow's "
    "stats.json: the values before quantisation; else from the reference TIFF mapped back with lo/hi); the "
    "percent of pixels at 0 and at 2**bits-1 in every image, exact (manifest.json, counted when written), "
    "the images that drift from the median in amber; the first, middle and last images; one row of every "
    "image stacked over the index (a sinogram for projections, a cut across the slices of a reconstruction). "
    "Images are shown as written, pixels at 0 in blue and at 2**bits-1 in red, as ImageJ's HiLo shows them.</p>"
)


# --- entry points --------------------------------------------------------------------------


def scan_sections(scan: Scan) -> list[Section]:
    return [section(scan, output) for output in scan.outputs]


def write_report(directories: list[str], path: str, workers: int = 1) -> str:
    """``tomotiff report``: one HTML file of every scan found in ``directories``, scans drawn by
    ``workers`` processes (a plot takes matplotlib some 60 ms); returns what to print."""
    scans = [scan for directory in directories for scan in find_scans(directory)]
    if workers > 1 and len(scans) > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(workers, len(scans))) as pool:
            sections = list(pool.map(scan_sections, scans))
    else:
        sections = [scan_sections(scan) for scan in scans]
    _write_text(path, render(scans, sections, "tomotiff report: " + ", ".join(directories)))
    problems = sum(1 for sects in sections for sect in sects if sect.problems)
    outputs = sum(len(sects) for sects in sections)
    return f"{path}: {len(scans)} scan(s), {outputs} output(s), {os.path.getsize(path) / 1e3:.0f} kB" + (
        f"; verify found problems in {problems} output(s)" if problems else "; verify OK"
    )


def write_scan_files(scan: Scan, html_path: str, figure_dirs: dict[str, str]) -> list[Section]:
    """The workflow's report job: the scan's own report.html, and each figure as
    ``figure_dirs[figure]/LABEL.png`` (one directory per figure, for Snakemake's report)."""
    sections = scan_sections(scan)
    for directory in figure_dirs.values():
        os.makedirs(directory, exist_ok=True)
    for sect in sections:
        for name, picture in sect.figures.items():
            path = os.path.join(figure_dirs[name], f"{sect.output.label}.png")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as handle:
                handle.write(picture.png)
    _write_text(html_path, render([scan], [sections], f"tomotiff report: scan {scan.name}"))
    return sections


def _write_text(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_atomically(path, lambda handle: handle.write(text.encode()))
