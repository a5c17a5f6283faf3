"""The intensity window (lo, hi): explicit, or from the percentiles of a reference image."""

from dataclasses import asdict, dataclass, replace

import numpy as np

from tomotiff.errors import TomotiffError
from tomotiff.quantisation import check_window

SATURATION_WARNING_FRACTION = 0.99


@dataclass(frozen=True)
class Window:
    """The values mapped onto 0 and 2**bits - 1, and how they were chosen (for the metadata)."""

    lo: float
    hi: float
    method: str  # "explicit", "reference", "global", or either of those "+explicit"
    reference: int | None = None
    percent: float | None = None
    sample: int | None = None  # global windows: every Nth image was read

    def __post_init__(self) -> None:
        check_window(self.lo, self.hi)

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        """The one line printed before a run, so a log always says which window was used."""
        if self.method == "explicit":
            how = "given"
        elif self.method.startswith("global"):
            how = f"from all selected images{f' (one in {self.sample})' if (self.sample or 1) > 1 else ''}, -p {self.percent:g}"
        else:
            how = f"from reference image {self.reference}, -p {self.percent:g}"
        if self.method.endswith("+explicit"):
            how += ", one side given"
        return f"window: lo={self.lo!r} hi={self.hi!r} ({how})"


def check_percent(percent: float) -> float:
    """``-p`` cuts ``percent`` from each end, so it must lie in [0, 50)."""
    if not 0 <= percent < 50:
        raise TomotiffError(f"-p/--percent must be in [0, 50), got {percent}; e.g. -p 0.1")
    return float(percent)


def finite_pixels(image: np.ndarray) -> np.ndarray:
    """The pixels that carry a value (NaN and Inf say nothing about the intensity range)."""
    values = np.asarray(image).ravel()
    return values[np.isfinite(values)] if values.dtype.kind == "f" else values


def percentile_window(image: np.ndarray, percent: float, index: int) -> tuple[float, float]:
    """The P-th and (100-P)-th percentiles (numpy's default, linear method) of the finite pixels,
    computed in float64 whatever the image type."""
    values = finite_pixels(image)
    if values.size == 0:
        raise TomotiffError(f"reference image {index} has no finite pixels; pick another with -r or give --lo/--hi")
    lo, hi = np.percentile(values.astype(np.float64), [percent, 100 - percent])
    return float(lo), float(hi)


def resolve_window(
    lo: float | None,
    hi: float | None,
    reference_image: np.ndarray | None,
    reference: int | None,
    percent: float,
) -> Window:
    """Combine explicit bounds with a reference image: an explicit side overrides the reference."""
    if lo is not None and hi is not None:
        return Window(float(lo), float(hi), "explicit")
    assert reference_image is not None and reference is not None, "a reference image is needed"
    ref_lo, ref_hi = percentile_window(reference_image, check_percent(percent), reference)
    if ref_hi == ref_lo:
        raise TomotiffError(
            f"reference image {reference} gives an empty window (lo = hi = {ref_lo!r}): it is constant; "
            "give --lo/--hi explicitly or pick another image with -r"
        )
    return with_explicit_sides(Window(ref_lo, ref_hi, "reference", reference, percent), lo, hi)


def with_explicit_sides(window: Window, lo: float | None, hi: float | None) -> Window:
    """A derived window with the side(s) the user gave explicitly replaced."""
    if lo is None and hi is None:
        return window
    return replace(window, lo=window.lo if lo is None else float(lo), hi=window.hi if hi is None else float(hi),
                   method=f"{window.method}+explicit")


def saturation_warning(image: np.ndarray, window: Window, index: int) -> str | None:
    """A warning when the window clips nearly every pixel: almost surely the wrong units."""
    image = np.asarray(image)
    finite = np.count_nonzero(np.isfinite(image)) if image.dtype.kind == "f" else image.size
    if finite == 0:
        return None
    inside = np.count_nonzero((image > window.lo) & (image < window.hi))  # NaN and Inf are never inside
    clipped = (finite - inside) / finite  # without copying out the finite pixels: this runs on every run
    if clipped < SATURATION_WARNING_FRACTION:
        return None
    values = finite_pixels(image)
    return (
        f"warning: the window lo={window.lo!r} hi={window.hi!r} saturates {clipped:.1%} of image {index}, "
        f"whose values span {float(values.min())!r}..{float(values.max())!r}; give --lo/--hi in the data's units or use --use_ref"
    )
