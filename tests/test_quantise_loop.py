"""The compiled quantisation loop computes bit for bit what the numpy passes compute: the formula.

Each comparison runs ``quantise`` twice on the same input: once as installed (the compiled
loop for float32 and uint16 images) and once with the loop hidden, so numpy does the work;
both must equal conftest's reference. The float32 steps themselves (before the tie check)
are compared with numpy's too: the uint16 shortcut relies on them being the same.
"""

from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tomotiff.quantisation as quantisation
from conftest import assert_quantised, run_cli
from tomotiff import quantise

compiled = quantisation._quantise_loop
pytestmark = pytest.mark.skipif(
    compiled is None, reason="tomotiff._quantise_loop is not built (no C compiler at install): numpy does the work"
)


@contextmanager
def numpy_only():
    """Hide the compiled loop, so quantise runs the numpy passes."""
    quantisation._quantise_loop = None
    try:
        yield
    finally:
        quantisation._quantise_loop = compiled


def both_ways(image: np.ndarray, lo: float, hi: float, bits: int, counts=(None, None)) -> tuple[np.ndarray, ...]:
    assert quantisation._compiled_loop_applies(image.dtype)
    fast = quantise(image, lo, hi, bits, counts=counts[0])
    with numpy_only():
        assert not quantisation._compiled_loop_applies(image.dtype)
        reference = quantise(image, lo, hi, bits, counts=counts[1])
    return fast, reference


def assert_both_ways(image: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """The same pixels both ways, equal to the formula, and the same clipping tallies both ways,
    equal to numpy's counts of the pixels written as 0 and as the top level and of NaN pixels."""
    counts = np.zeros(3, np.int64), np.zeros(3, np.int64)
    fast, reference = both_ways(image, lo, hi, bits, counts)
    np.testing.assert_array_equal(fast, reference)
    assert_quantised(fast, image, lo, hi, bits)
    nan = np.count_nonzero(np.isnan(image)) if image.dtype.kind == "f" else 0
    expected = [np.count_nonzero(fast == 0), np.count_nonzero(fast == 2**bits - 1), nan]
    assert counts[0].tolist() == expected and counts[1].tolist() == expected
    return fast


SPECIALS = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1e-38], np.float32)


@pytest.mark.parametrize("bits", [8, 16])
def test_special_values_match_numpy(bits):
    fast = assert_both_ways(SPECIALS, -1.0, 1.0, bits)
    assert fast[:3].tolist() == [0, 2**bits - 1, 0]  # NaN -> 0, +Inf -> top, -Inf -> 0


@pytest.mark.parametrize("bits", [8, 16])
def test_halfway_values_round_to_even(bits):
    levels = np.arange(2**bits - 1, dtype=np.float32)
    halfway = levels + np.float32(0.5)  # the formula puts each exactly on its tie: scale is 1
    fast = assert_both_ways(halfway, 0.0, float(2**bits - 1), bits)
    np.testing.assert_array_equal(fast, np.where(levels % 2 == 0, levels, levels + 1))


UINT16_WINDOWS = [
    (0.0, 65535.0),
    (100.0, 60000.0),
    (1000.5, 1300.25),
    (-3.0, 40000.0),
    (0.0, 30000.0),
    (0.0, 200.0),
    (40.0, 60430.0),
    (0.0, 510.0),
    (30000.0, 30010.0),
]


@pytest.mark.parametrize("lo, hi", UINT16_WINDOWS)
@pytest.mark.parametrize("bits", [8, 16])
def test_every_uint16_value_matches_numpy(lo, hi, bits):
    assert_both_ways(np.arange(65536, dtype=np.uint16).reshape(256, 256), lo, hi, bits)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", ">u2", ">i2", "bool"])
@pytest.mark.parametrize("bits", [8, 16])
def test_tables_are_looked_up_as_numpy_takes_them(dtype, bits):
    values = np.array([False, True]) if dtype == "bool" else np.arange(-32768, 65536).astype(dtype)
    for lo, hi in [(0.0, 30000.0), (-510.0, 0.0), (-3.0, 40000.0), (0.0, 1.0), (100.5, 101.0)]:
        assert_both_ways(values, lo, hi, bits)


def test_uint16_windows_take_the_kernel_their_check_allows():
    """Unchecked float32 where it is right for all 65536 values, the tie check where it is not
    (0 .. 30000: float32 puts 5000, which the formula puts on 42.5, above the tie)."""
    right = quantisation._float32_right_for_uint16
    assert right(100.0, 60000.0, 8) and right(0.0, 65535.0, 16)
    assert not right(0.0, 30000.0, 8) and not right(100.0, 60000.0, 16)
    kernel, args = quantisation._compiled_kernel(np.dtype(np.uint16), 100.0, 60000.0, 8)
    assert kernel is compiled.float32 and args[-1] == -1.0  # limit -1: no check
    kernel, args = quantisation._compiled_kernel(np.dtype(np.uint16), 0.0, 30000.0, 8)
    assert kernel is compiled.float32 and 0 < args[-1] < 0.5
    kernel, args = quantisation._compiled_kernel(np.dtype(np.uint16), 100.0, 60000.0, 16)
    assert kernel is compiled.exact
    assert quantise(np.array([5000], np.uint16), 0, 30000, 8).tolist() == [42]


@pytest.mark.parametrize("lo, hi", UINT16_WINDOWS)
@pytest.mark.parametrize("bits", [8, 16])
def test_the_float32_steps_match_numpy_bit_for_bit(lo, hi, bits):
    """The compiled float32 steps before any tie check (no limit for uint16, a limit no pixel
    reaches for float32) against the numpy passes _float32_right_for_uint16 runs."""
    values = np.arange(65536, dtype=np.uint16)
    rng = np.random.default_rng(int(lo) + bits)
    floats = np.concatenate([rng.uniform(lo - (hi - lo), hi + (hi - lo), 65536), SPECIALS]).astype(np.float32)
    offset, scale = quantisation._float32_offset_scale(lo, hi, bits)
    bounds = quantisation._bounds(np.dtype(np.float32), float(2**bits - 1))
    dtype = quantisation.output_dtype(bits)
    for x, limit in [(values, ()), (floats, (1.0,))]:
        if limit and bits == 16:
            continue  # float32() checks ties for uint8 output only
        fast, reference = np.empty(x.size, dtype), np.empty(x.size, dtype)
        compiled.float32(x, fast, lo, hi, float(offset), float(scale), *limit)
        scaled, rounded = np.empty(x.size, np.float32), np.empty(x.size, np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            quantisation._float32_steps(x, reference, offset, scale, bounds, scaled, rounded)
        np.testing.assert_array_equal(fast, reference)


@pytest.mark.parametrize("lo, hi", [(0.0, 255.0), (-0.0005, 0.0015), (0.0, 30000.0), (1000.5, 1300.25)])
def test_float32_pixels_beside_ties_are_computed_again(lo, hi):
    """Pixels on and a few ulps beside the ties, shuffled into noise: the chunks that hold them
    go to the exact loop."""
    top = 255
    k = np.arange(top, dtype=np.float64)
    x = (lo + (k + 0.5) * ((hi - lo) / top)).astype(np.float32)
    near = np.concatenate([x] + [np.nextafter(x, np.float32(d)) for d in (np.inf, -np.inf)])
    rng = np.random.default_rng(4)
    image = rng.permutation(np.concatenate([near, rng.uniform(lo, hi, 100000).astype(np.float32)]))
    assert_both_ways(image, lo, hi, 8)


finite_or_special = st.floats(width=32, allow_nan=True, allow_infinity=True, allow_subnormal=True)
windows = st.tuples(st.floats(-1e6, 1e6), st.floats(1e-6, 1e6))


@settings(max_examples=300, deadline=None)
@given(
    image=hnp.arrays(np.float32, hnp.array_shapes(min_dims=1, max_dims=3, max_side=40), elements=finite_or_special),
    window=windows,
    bits=st.sampled_from([8, 16]),
)
def test_float32_images_match_numpy(image, window, bits):
    lo, width = window
    assert_both_ways(image, float(lo), float(lo) + float(width), bits)


@settings(max_examples=100, deadline=None)
@given(
    image=hnp.arrays(np.uint16, hnp.array_shapes(min_dims=2, max_dims=2, max_side=64)),
    lo=st.integers(0, 60000),
    width=st.integers(1, 70000),
    bits=st.sampled_from([8, 16]),
)
def test_uint16_images_match_numpy(image, lo, width, bits):
    assume(lo + width > 0)
    assert_both_ways(image, lo, lo + width, bits)


def test_blocks_bigger_than_one_internal_block_and_strided_views():
    volume = np.random.default_rng(5).normal(0, 1, (3, 700, 800)).astype(np.float32)
    for image in (volume, volume[:, 10:500, 3:700], np.moveaxis(volume, 1, 0)):  # contiguous, cropped, transposed
        assert_both_ways(image, -2.0, 2.5, 8)
        assert_both_ways(image, -2.0, 2.5, 16)


def test_the_loop_checks_its_arguments():
    image = np.zeros((4, 4), np.float32)
    target = np.zeros((4, 4), np.uint8)
    with pytest.raises(TypeError, match="float32 or uint16 to uint8 or uint16"):
        compiled.exact(image.astype(np.float64), target, 0.0, 1.0)
    with pytest.raises(TypeError):
        compiled.exact(image.astype(">f4"), target, 0.0, 1.0)  # big-endian
    with pytest.raises(TypeError):
        compiled.exact(np.empty(3, dtype=[]), np.zeros(3, np.uint8), 0.0, 1.0)  # items of 0 bytes
    with pytest.raises(ValueError, match="differ in size"):
        compiled.exact(image, np.zeros(15, np.uint8), 0.0, 1.0)
    with pytest.raises(ValueError, match="not C-contiguous"):
        compiled.exact(image[:, ::2], np.zeros((4, 2), np.uint8), 0.0, 1.0)  # not contiguous
    read_only = np.zeros((4, 4), np.uint8)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        compiled.exact(image, read_only, 0.0, 1.0)
    with pytest.raises(TypeError, match="writes uint8 only"):
        compiled.float32(image, np.zeros((4, 4), np.uint16), 0.0, 1.0, 0.0, 65535.0, 0.4)
    with pytest.raises(TypeError, match="reads uint16 only"):
        compiled.float32(image, target, 0.0, 1.0, 0.0, 255.0)
    counts, table = np.zeros((4, 4), np.uint16), np.zeros(65536, np.uint8)
    compiled.lookup(counts, target, table)
    with pytest.raises(ValueError, match="one target item for every source value"):
        compiled.lookup(counts, target, table[:256])  # too short: reads would leave the table
    with pytest.raises(ValueError, match="one target item for every source value"):
        compiled.lookup(counts, target, table.view(np.uint16))  # not the target's type
    with pytest.raises(TypeError, match="uint8 or uint16 to uint8 or uint16"):
        compiled.lookup(counts.view(np.int16), target, table)
    with pytest.raises(ValueError, match="differ in size"):
        compiled.lookup(counts, np.zeros(3, np.uint8), table)
    for tallies in (np.zeros(3, np.int32), np.zeros(4, np.int64), np.zeros(3, np.float64)):
        with pytest.raises(TypeError, match="int64 array of 3"):
            compiled.exact(image, target, 0.0, 1.0, tallies)
    with pytest.raises(TypeError, match="bytes-like"):
        compiled.exact(image, target, 0.0, 1.0, [0, 0, 0])
    with pytest.raises(TypeError, match="int64 array of 3"):
        compiled.lookup(counts, target, table, np.zeros(2, np.int64))


def test_version_says_which_loop_quantises():
    done = run_cli("nxs2tiffux", "-V")
    assert done.returncode == 0 and done.stdout.strip().endswith("quantisation loop: compiled"), done.stdout
    with numpy_only():
        assert quantisation.loop_in_use().startswith("numpy, slower (the C loop was not built")
