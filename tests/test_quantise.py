"""The quantisation formula: exact values, NaN/Inf rules, dtype rules, and a fuzz of all of them."""

import numpy as np
import pytest
from conftest import assert_quantised
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tomotiff import TomotiffError, dequantise, quantise
from tomotiff.quantisation import working_dtype


def test_the_package_exports_the_function_not_the_module():
    import tomotiff.extract  # noqa: F401 (imports tomotiff.quantisation)
    from tomotiff import quantise as exported

    assert exported is quantise and callable(exported)


def test_known_values_round_half_to_even():
    x = np.array([np.nan, np.inf, -np.inf, -1.0, 0.0, 0.5, 1.0, 2.0, 0.25, 1.5 / 255, 2.5 / 255], np.float64)
    assert quantise(x, 0.0, 1.0, 8).tolist() == [0, 255, 0, 0, 0, 128, 255, 255, 64, 2, 2]


def test_sixteen_bits_spans_the_full_range():
    x = np.linspace(-1, 3, 4001, dtype=np.float32)
    q = quantise(x, -1, 3, 16)
    assert q.dtype == np.uint16 and q[0] == 0 and q[-1] == 65535
    assert_quantised(q, x, -1, 3, 16)


def test_strided_views_and_out_buffer():
    volume = np.random.default_rng(1).normal(0, 1, (30, 7, 40)).astype(np.float32)
    view = np.moveaxis(volume, 1, 0)  # (7, 30, 40), not contiguous
    out = np.zeros(view.shape, np.uint8)
    assert quantise(view, -2, 2, 8, out=out) is out
    assert_quantised(out, view, -2, 2, 8)


def test_large_image_crosses_internal_blocks():
    x = np.random.default_rng(2).uniform(-5, 5, (1100, 1000)).astype(np.float32)
    assert_quantised(quantise(x, -4, 4, 16), x, -4, 4, 16)


@pytest.mark.parametrize("lo, hi", [(1.0, 1.0), (2.0, 1.0), (0.0, float("nan")), (float("-inf"), 1.0)])
def test_bad_windows_are_user_errors(lo, hi):
    with pytest.raises(TomotiffError):
        quantise(np.zeros(3), lo, hi, 8)


def test_bits_other_than_8_or_16_are_refused():
    with pytest.raises(TomotiffError, match="8 or 16"):
        quantise(np.zeros(3), 0, 1, 12)


def test_working_precision_follows_input_and_window():
    assert working_dtype(np.dtype(np.uint16), 0, 100) == np.float32
    assert working_dtype(np.dtype(np.float32), -0.0017, 0.0017) == np.float32
    assert working_dtype(np.dtype(np.int32), 0, 100) == np.float64  # not exact in float32
    assert working_dtype(np.dtype(np.float64), 0, 1) == np.float64
    assert working_dtype(np.dtype(np.uint16), 30000, 30010) == np.float64  # narrow window far from zero


def test_narrow_window_far_from_zero_is_still_exact():
    x = np.arange(29990, 30020, dtype=np.uint16)
    assert_quantised(quantise(x, 30000, 30010, 8), x, 30000, 30010, 8)


def test_dequantise_recovers_values_within_half_a_level():
    x = np.random.default_rng(3).uniform(-0.002, 0.002, 10000)
    q = quantise(x, -0.002, 0.002, 16)
    step = 0.004 / 65535
    assert np.max(np.abs(dequantise(q, -0.002, 0.002, 16) - x)) <= step / 2 + 1e-12


DTYPES = ["uint8", "uint16", "uint32", "int16", "int32", "float16", "float32", "float64"]


@st.composite
def images_and_windows(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    elements = (st.floats(width=dtype.itemsize * 8, allow_nan=True, allow_infinity=True) if dtype.kind == "f"
                else st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)))
    x = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=1, max_dims=3, max_side=12), elements=elements))
    bound = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
    lo, hi = sorted([draw(bound), draw(bound)])
    if hi - lo < 1e-3 * max(1.0, abs(lo)):
        hi = lo + 1e-3 * max(1.0, abs(lo))
    return x, lo, hi, draw(st.sampled_from([8, 16]))


@settings(max_examples=300, deadline=None)
@given(images_and_windows())
def test_fuzz_matches_formula_for_every_dtype(case):
    x, lo, hi, bits = case
    q = quantise(x, lo, hi, bits)
    assert q.dtype == (np.uint8 if bits == 8 else np.uint16) and q.shape == x.shape
    assert_quantised(q, x, lo, hi, bits)


@settings(max_examples=100, deadline=None)
@given(hnp.arrays(np.float32, 50, elements=st.floats(-10, 10, width=32)), st.sampled_from([8, 16]))
def test_fuzz_monotonic(x, bits):
    order = np.argsort(x, kind="stable")
    q = quantise(x, -5, 5, bits)
    assert np.all(np.diff(q[order].astype(np.int64)) >= 0)
