"""The intensity window (the *window* stage): which values map onto 0 and 2**bits - 1.

The policy lives here whole: explicit ``--lo/--hi``, percentiles of one reference image, or
exact percentiles of every selected image (``--window global``, streamed through the engine's
read, computed by :mod:`tomotiff.global_percentiles`); an explicit side overrides a derived
one. The images a window may come from are the plan's (a raw scan's projections), never the
darks or flats.
"""

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from tomotiff.errors import TomotiffError
from tomotiff.global_percentiles import exact_percentiles
from tomotiff.mask import Mask

if TYPE_CHECKING:  # the window stage reads through a source, but quantise() needs only check_window
    from tomotiff.source import Source

SATURATION_WARNING_FRACTION = 0.99
METHODS = ("reference", "global")

Progress = bool | Callable[[int], object]  # a bar on stderr, or a callable given the images just read


def check_window(lo: float, hi: float) -> None:
    """A usable window is finite with ``hi > lo``, and ``hi - lo`` is finite in float64."""
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise TomotiffError(f"the window must be finite, got lo={lo}, hi={hi}")
    if hi <= lo:
        raise TomotiffError(f"hi ({hi}) must be greater than lo ({lo}); give --lo below --hi")
    if not np.isfinite(float(hi) - float(lo)):
        raise TomotiffError(f"the window lo={lo}, hi={hi} is wider than float64 can hold")


@dataclass(frozen=True)
class Window:
    """The values mapped onto 0 and 2**bits - 1, and how they were chosen (for the metadata)."""

    lo: float
    hi: float
    method: str  # "explicit", "reference", "global", or either of those "+explicit"
    reference: int | None = None
    percent: float | None = None
    sample: int | None = None  # global windows: every Nth image was read
    mask: dict | None = None  # the pixels the percentiles looked at (Mask.as_dict), if masked

    def __post_init__(self) -> None:
        check_window(self.lo, self.hi)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The one line printed before a run, so a log always says which window was used."""
        if self.method == "explicit":
            how = "given"
        elif self.method.startswith("global"):
            sampled = f" (one in {self.sample})" if (self.sample or 1) > 1 else ""
            how = f"from all selected images{sampled}, -p {self.percent:g}"
        else:
            how = f"from reference image {self.reference}, -p {self.percent:g}"
        if self.mask:
            how += Mask(self.mask["circle"], tuple(float(v) for v in self.mask["values"])).describe()
        if self.method.endswith("+explicit"):
            how += ", one side given"
        return f"window: lo={self.lo!r} hi={self.hi!r} ({how})"


@dataclass(frozen=True)
class WindowRequest:
    """How to choose a window: both sides given, or percentiles (``percent`` cut from each end) of
    the ``reference`` image (default: the middle candidate) or of every ``sample``-th candidate
    image (``method="global"``), over the pixels ``mask`` keeps; a side given explicitly
    overrides the derived one."""

    lo: float | None = None
    hi: float | None = None
    reference: int | None = None
    percent: float = 0.0
    method: str = "reference"
    sample: int = 1
    mask: Mask | None = None

    def __post_init__(self) -> None:
        check_percent(self.percent)
        if self.method not in METHODS:
            raise TomotiffError(f"--window must be reference or global, not {self.method!r}")
        if isinstance(self.sample, bool) or not isinstance(self.sample, (int, np.integer)) or self.sample < 1:
            raise TomotiffError(f"--sample must be a whole number >= 1, got {self.sample!r}")
        if self.lo is not None and self.hi is not None:
            check_window(self.lo, self.hi)


def check_percent(percent: float) -> float:
    """``-p`` cuts ``percent`` from each end, so it must lie in [0, 50)."""
    if not 0 <= percent < 50:
        raise TomotiffError(f"-p/--percent must be in [0, 50), got {percent}; e.g. -p 0.1")
    return float(percent)


def middle_image(candidates: np.ndarray) -> int:
    """The default reference image: the middle of the candidate images."""
    return int(candidates[len(candidates) // 2])


def choose_window(
    source: "Source",
    candidates: np.ndarray,
    request: WindowRequest,
    progress: Progress = False,
    read: dict | None = None,
) -> Window:
    """The window ``request`` asks for, from the ``candidates`` images of ``source`` (ascending);
    ``read`` (if given) receives the reference image read, by index, for checks that need it."""
    if request.lo is not None and request.hi is not None:
        return Window(float(request.lo), float(request.hi), "explicit")
    if request.method == "global":
        what = _described(candidates, request.sample) + (request.mask.describe() if request.mask else "")
        sampled = candidates[:: request.sample]
        lo, hi = volume_percentiles(source, sampled, request.percent, progress, what, request.mask)
        window = Window(lo, hi, "global", None, request.percent, sample=request.sample, mask=_recorded(request.mask))
    else:
        index = middle_image(candidates) if request.reference is None else request.reference
        image = source.read_image(index)
        if read is not None:
            read[index] = image
        window = reference_window(image, index, request.percent, request.mask)
    return with_explicit_sides(window, request.lo, request.hi)


def _recorded(mask: Mask | None) -> dict | None:
    return mask.as_dict() if mask else None


def reference_window(image: np.ndarray, index: int, percent: float, mask: Mask | None = None) -> Window:
    """The ``percent`` and ``100 - percent`` percentiles of reference image ``index`` (of the
    pixels ``mask`` keeps)."""
    pixels = mask.select(np.asarray(image)[None]) if mask else image
    lo, hi = percentile_window(pixels, check_percent(percent), index, mask)
    if hi == lo:
        raise TomotiffError(
            f"reference image {index} gives an empty window (lo = hi = {lo!r}): it is constant"
            f"{mask.describe() if mask else ''}; give --lo/--hi explicitly or pick another image with -r"
        )
    return Window(lo, hi, "reference", index, percent, mask=_recorded(mask))


def volume_percentiles(
    source: "Source",
    images: np.ndarray,
    percent: float,
    progress: Progress = False,
    what: str | None = None,
    mask: Mask | None = None,
) -> tuple[float, float]:
    """The exact ``percent`` and ``100 - percent`` percentiles of every finite pixel of ``images``
    that ``mask`` keeps (equal to ``np.percentile`` over them as float64), read through the
    engine's stream."""
    from tomotiff import engine

    passes = 0
    what = what or _described(images, 1)
    select = None if mask is None else lambda tile, rows: mask.select(tile, rows, source.image_shape)

    def one_pass():
        nonlocal passes
        passes += 1
        bar = engine.progress_bar(len(images), progress is True, f"global window, pass {passes}")
        report = progress if callable(progress) else bar.update
        try:
            for arrays, finished in engine.stream(source, images, select):
                yield from arrays
                if finished:
                    report(finished)
        finally:
            bar.close()

    return exact_percentiles(source.dtype, one_pass, check_percent(percent), what)


def _described(candidates: np.ndarray, sample: int) -> str:
    """Which images are read, for messages: "the 25 selected images (3..27)"."""
    span = f"{candidates[0]}..{candidates[-1]}" if len(candidates) else "none"
    if sample == 1:
        return f"the {len(candidates)} selected images ({span})"
    read = len(candidates[::sample])
    return f"the {read} images sampled (one in {sample}) from the {len(candidates)} selected ({span})"


def finite_pixels(image: np.ndarray) -> np.ndarray:
    """The pixels that carry a value (NaN and Inf say nothing about the intensity range)."""
    values = np.asarray(image).ravel()
    return values[np.isfinite(values)] if values.dtype.kind == "f" else values


def percentile_window(image: np.ndarray, percent: float, index: int, mask: Mask | None = None) -> tuple[float, float]:
    """The P-th and (100-P)-th percentiles (numpy's default, linear method) of the finite pixels
    (``image``: those ``mask`` kept), computed in float64 whatever the image type."""
    values = finite_pixels(image)
    if values.size == 0:
        kept = f" the mask keeps ({mask.describe()[2:]})" if mask else ""
        raise TomotiffError(
            f"reference image {index} has no finite pixels{kept}; pick another with -r or give --lo/--hi"
        )
    lo, hi = np.percentile(values.astype(np.float64), [percent, 100 - percent])
    return float(lo), float(hi)


def with_explicit_sides(window: Window, lo: float | None, hi: float | None) -> Window:
    """A derived window with the side(s) the user gave explicitly replaced."""
    if lo is None and hi is None:
        return window
    return replace(
        window,
        lo=window.lo if lo is None else float(lo),
        hi=window.hi if hi is None else float(hi),
        method=f"{window.method}+explicit",
    )


def saturation_warning(image: np.ndarray, window: Window, index: int) -> str | None:
    """A warning when the window clips nearly every pixel of ``image`` (image ``index``, one the
    window was chosen for): almost surely the wrong units. The advice fits how it was chosen."""
    image = np.asarray(image)
    finite = np.count_nonzero(np.isfinite(image)) if image.dtype.kind == "f" else image.size
    if finite == 0:
        return None
    inside = np.count_nonzero((image > window.lo) & (image < window.hi))  # NaN and Inf are never inside
    clipped = (finite - inside) / finite  # without copying out the finite pixels
    if clipped < SATURATION_WARNING_FRACTION:
        return None
    values = finite_pixels(image)
    return (
        f"warning: the window lo={window.lo!r} hi={window.hi!r} saturates {clipped:.1%} of image {index}, "
        f"whose values span {float(values.min())!r}..{float(values.max())!r}; {advice(window)}"
    )


def advice(window: Window) -> str:
    """What to try instead of what was done (never advice to do what the user already did)."""
    if window.method == "explicit":
        return "give --lo/--hi in the data's units or use --use_ref"
    if window.method.endswith("+explicit"):
        return "check the side given with --lo/--hi"
    others = ["-p 0.1"] if not window.percent else []
    others.append("--window global" if window.method == "reference" else "--lo/--hi")
    return f"try {' or '.join(others)}"
