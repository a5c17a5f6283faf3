"""The compiled quantisation loop computes bit for bit what the numpy passes compute.

Each comparison runs ``quantise`` twice on the same input: once as installed (the compiled
loop for float32 and uint16 images) and once with the loop hidden, so numpy does the work.
"""

from contextlib import contextmanager

import numpy as np
import pytest
from conftest import run_cli
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tomotiff.quantisation as quantisation
from tomotiff import quantise

compiled = quantisation._quantise_loop
pytestmark = pytest.mark.skipif(
    compiled is None, reason="tomotiff._quantise_loop is not built (no C compiler at install): numpy does the work")


@contextmanager
def numpy_only():
    """Hide the compiled loop, so quantise runs the numpy passes."""
    quantisation._quantise_loop = None
    try:
        yield
    finally:
        quantisation._quantise_loop = compiled


def both_ways(image: np.ndarray, lo: float, hi: float, bits: int) -> tuple[np.ndarray, np.ndarray]:
    assert quantisation._compiled_loop_applies(image.dtype, quantisation.working_dtype(image.dtype, lo, hi))
    fast = quantise(image, lo, hi, bits)
    with numpy_only():
        assert not quantisation._compiled_loop_applies(image.dtype, np.dtype(np.float32))
        reference = quantise(image, lo, hi, bits)
    return fast, reference


SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1e-38], np.float32)


@pytest.mark.parametrize("bits", [8, 16])
def test_special_values_match_numpy(bits):
    fast, reference = both_ways(SPECIALS, -1.0, 1.0, bits)
    np.testing.assert_array_equal(fast, reference)
    top = 2**bits - 1
    assert fast[:3].tolist() == [0, top, 0]  # NaN -> 0, +Inf -> top, -Inf -> 0


@pytest.mark.parametrize("bits", [8, 16])
def test_halfway_values_round_to_even(bits):
    levels = np.arange(2**bits - 1, dtype=np.float32)
    halfway = levels + np.float32(0.5)  # exactly representable: scale is 1 below
    fast, reference = both_ways(halfway, 0.0, float(2**bits - 1), bits)
    np.testing.assert_array_equal(fast, reference)
    expected = np.where(levels % 2 == 0, levels, levels + 1)
    np.testing.assert_array_equal(fast, expected)


@pytest.mark.parametrize("lo, hi", [(0.0, 65535.0), (100.0, 60000.0), (1000.5, 1300.25), (-3.0, 40000.0)])
@pytest.mark.parametrize("bits", [8, 16])
def test_every_uint16_value_matches_numpy(lo, hi, bits):
    counts = np.arange(65536, dtype=np.uint16).reshape(256, 256)
    fast, reference = both_ways(counts, lo, hi, bits)
    np.testing.assert_array_equal(fast, reference)


finite_or_special = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)
windows = st.tuples(st.floats(-1e6, 1e6), st.floats(1e-6, 1e6)).filter(
    lambda w: abs(w[0]) <= 8 * w[1])  # windows the float32 path takes (quantisation._FLOAT32_MAX_OFFSET_RATIO)


@settings(max_examples=300, deadline=None)
@given(image=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=40), elements=finite_or_special),
       window=windows, bits=st.sampled_from([8, 16]))
def test_float32_images_match_numpy(image, window, bits):
    lo, width = window
    fast, reference = both_ways(image, float(lo), float(lo) + float(width), bits)
    np.testing.assert_array_equal(fast, reference)


@settings(max_examples=100, deadline=None)
@given(image=hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, max_side=64)),
       lo=st.integers(0, 60000), width=st.integers(1, 70000), bits=st.sampled_from([8, 16]))
def test_uint16_images_match_numpy(image, lo, width, bits):
    assume(lo <= 8 * width)  # a window the float32 path takes
    fast, reference = both_ways(image, lo, lo + width, bits)
    np.testing.assert_array_equal(fast, reference)


def test_blocks_bigger_than_one_internal_block_and_strided_views():
    volume = np.random.default_rng(5).normal(0, 1, (3, 700, 800)).astype(np.float32)
    for image in (volume, volume[:, 10:500, 3:700], np.moveaxis(volume, 1, 0)):  # contiguous, cropped, transposed
        fast, reference = both_ways(image, -2.0, 2.5, 8)
        np.testing.assert_array_equal(fast, reference)


def test_the_loop_checks_its_arguments():
    image = np.zeros((4, 4), np.float32)
    with pytest.raises(TypeError, match="float32 or uint16 to uint8 or uint16"):
        compiled.run(image.astype(np.float64), np.zeros((4, 4), np.uint8), 0.0, 1.0, 255.0)
    with pytest.raises(TypeError):
        compiled.run(image.astype(">f4"), np.zeros((4, 4), np.uint8), 0.0, 1.0, 255.0)  # big-endian
    with pytest.raises(TypeError):
        compiled.run(np.empty(3, dtype=[]), np.zeros(3, np.uint8), 0.0, 1.0, 255.0)  # items of 0 bytes
    with pytest.raises(ValueError, match="differ in size"):
        compiled.run(image, np.zeros(15, np.uint8), 0.0, 1.0, 255.0)
    with pytest.raises(ValueError, match="not C-contiguous"):
        compiled.run(image[:, ::2], np.zeros((4, 2), np.uint8), 0.0, 1.0, 255.0)  # not contiguous
    read_only = np.zeros((4, 4), np.uint8)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        compiled.run(image, read_only, 0.0, 1.0, 255.0)


def test_version_says_which_loop_quantises():
    done = run_cli("nxs2tiffux", "-V")
    assert done.returncode == 0 and done.stdout.strip().endswith("quantisation loop: compiled"), done.stdout
    with numpy_only():
        assert quantisation.loop_in_use().startswith("numpy, slower (the C loop was not built")
