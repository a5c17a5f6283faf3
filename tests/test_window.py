"""Choosing lo/hi: explicit, reference percentiles, one side overridden, and the warnings."""

import numpy as np
import pytest

from tomotiff import TomotiffError
from tomotiff.window import Window, reference_window, saturation_warning, with_explicit_sides


def resolve_window(lo, hi, image, index, percent) -> Window:
    """A reference window of ``image`` with the sides given explicitly replaced (as -r/-p with --lo or --hi)."""
    return with_explicit_sides(reference_window(image, index, percent), lo, hi)


def test_reference_uses_numpy_default_percentiles_of_finite_pixels():
    image = np.random.default_rng(0).normal(0, 1, (50, 60)).astype(np.float32)
    image[0, :5] = [np.nan, np.inf, -np.inf, np.nan, np.nan]
    window = resolve_window(None, None, image, 7, 0.1)
    finite = image[np.isfinite(image)].astype(np.float64)  # computed in float64, documented
    assert window.lo == float(np.percentile(finite, 0.1)) and window.hi == float(np.percentile(finite, 99.9))
    assert (window.method, window.reference, window.percent) == ("reference", 7, 0.1)


def test_percent_zero_is_min_max():
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    window = resolve_window(None, None, image, 0, 0)
    assert (window.lo, window.hi) == (0.0, 11.0)


def test_explicit_side_overrides_reference():
    image = np.arange(100, dtype=np.float32).reshape(10, 10)
    window = resolve_window(None, 50.0, image, 3, 0)
    assert (window.lo, window.hi, window.method) == (0.0, 50.0, "reference+explicit")


def test_constant_reference_suggests_explicit_window():
    with pytest.raises(TomotiffError, match="--lo/--hi"):
        resolve_window(None, None, np.full((4, 4), 3.0), 2, 0)


@pytest.mark.parametrize("percent", [-1, 50, 75])
def test_percent_outside_range_is_refused(percent):
    with pytest.raises(TomotiffError, match=r"\[0, 50\)"):
        resolve_window(None, None, np.arange(4.0), 0, percent)


def test_saturation_warning_names_the_data_range():
    raw = np.full((8, 8), 40000, np.uint16)
    raw[0, 0] = 41
    message = saturation_warning(raw, Window(-0.0017, 0.0017, "explicit"), 5)
    assert "100.0%" in message and "41.0..40000.0" in message and "image 5" in message
    assert saturation_warning(raw, Window(0, 65535, "explicit"), 5) is None


def test_saturation_counts_finite_pixels_only():
    image = np.full((3, 100), np.nan, np.float32)
    image[0, :] = np.inf  # NaN and Inf say nothing about the window
    image[1, :] = 0.5  # inside (0, 1)
    assert saturation_warning(image, Window(0, 1, "explicit"), 0) is None
    image[1, 1:] = 1.0  # on the bound: clipped, 99% of the finite pixels
    message = saturation_warning(image, Window(0, 1, "explicit"), 0)
    assert "saturates 99.0% of image 0" in message and "0.5..1.0" in message
    assert saturation_warning(np.full((4, 4), np.nan, np.float32), Window(0, 1, "explicit"), 0) is None
