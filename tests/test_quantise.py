"""The quantisation formula: exact values for every input type (ties included), NaN/Inf rules,
dtype rules, the float32 error bound, and a fuzz of all of them.

"Exact" means equal to conftest.expected_quantised, the formula in float64 written with numpy
independently of tomotiff. Each exactness test runs twice: with the compiled loop if it is
built, and with numpy only.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tomotiff.quantisation as quantisation
from conftest import assert_quantised, expected_quantised
from tomotiff import TomotiffError, dequantise, quantise
from tomotiff.quantisation import float32_error_bound, working_dtype


@pytest.fixture(params=["installed", "numpy"])
def path(request, monkeypatch) -> str:
    """Quantise as installed (the compiled loop if built), then with numpy only."""
    if request.param == "numpy":
        monkeypatch.setattr(quantisation, "_quantise_loop", None)
    elif quantisation._quantise_loop is None:
        pytest.skip("the compiled loop is not built")
    return request.param


def formula_value(x: np.ndarray, lo: float, hi: float, bits: int) -> np.ndarray:
    """The formula in float64 before rounding (the reference's steps, NaN aside)."""
    return ((np.clip(np.asarray(x, np.float64), lo, hi) - lo) / (hi - lo)) * (2**bits - 1)


def test_the_package_exports_the_function_not_the_module():
    import tomotiff.window  # noqa: F401 (imports tomotiff.quantisation)
    from tomotiff import quantise as exported

    assert exported is quantise and callable(exported)


def test_known_values_round_half_to_even(path):
    x = np.array([np.nan, np.inf, -np.inf, -1.0, 0.0, 0.5, 1.0, 2.0, 0.25, 1.5 / 255, 2.5 / 255], np.float64)
    assert quantise(x, 0.0, 1.0, 8).tolist() == [0, 255, 0, 0, 0, 128, 255, 255, 64, 2, 2]


def test_the_issue_examples_follow_the_formula_not_a_neighbour(path):
    # 5000 / 30000 * 255 is 42.5 in float64 (rounds to 42); float32 puts it above the tie (43).
    assert quantise(np.array([5000], np.uint16), 0, 30000, 8).tolist() == [42]
    assert quantise(np.array([5000.0], np.float32), 0, 30000, 8).tolist() == [42]
    # 100 / 200 * 65535 is 32767.5: even is 32768.
    assert quantise(np.array([100], np.uint16), 0, 200, 16).tolist() == [32768]
    assert quantise(np.array([100.0]), 0, 200, 16).tolist() == [32768]


INTEGER_WINDOWS = [
    (0, 30000),
    (0, 200),
    (100, 60000),
    (40, 60430),
    (0, 65535),
    (0, 510),
    (-510, 0),
    (0, 131070),
    (0, 255),
    (1e6, 1e6 + 3),
    (-300, -100),
    (-3, 40000),
    (-32768, 32767),
    (-1, 1),
    (1000.5, 1300.25),
    (0, 4096),
    (7, 8),
]
SMALL_INTEGERS = ["uint8", "int8", "uint16", "int16", ">u2", ">i2"]


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("dtype", SMALL_INTEGERS)
def test_every_value_of_8_and_16_bit_integers_under_many_windows(dtype, bits, path):
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1).astype(dtype)
    for lo, hi in INTEGER_WINDOWS:
        assert_quantised(quantise(values, lo, hi, bits), values, lo, hi, bits)


@pytest.mark.parametrize("bits", [8, 16])
def test_the_integer_windows_hold_many_exact_ties(bits):
    """The windows above are there for their ties: values the float64 formula puts exactly on k + 1/2."""
    values = np.arange(-32768, 65536)
    ties = {(lo, hi): np.count_nonzero(formula_value(values, lo, hi, bits) % 1 == 0.5) for lo, hi in INTEGER_WINDOWS}
    assert ties[(0, 30000)] == 15 and ties[(0, 200)] == 5 and ties[(0, 510)] == ties[(-510, 0)] == 255
    assert ties[(0, 131070)] == (32768 if bits == 16 else 128)


def test_bool_images_are_0_and_1(path):
    x = np.array([[True, False], [False, True]])
    for lo, hi, bits in [(0, 1, 8), (-1, 1, 8), (0, 2, 16), (0.5, 3, 8)]:
        assert_quantised(quantise(x, lo, hi, bits), x, lo, hi, bits)


FLOAT_WINDOWS = [
    (0.0, 1.0),
    (-1.0, 3.0),
    (0.0, 255.0),
    (0.0, 65535.0),
    (-0.0005, 0.0015),
    (-2.5e-3, 2.5e-3),
    (0.0, 30000.0),
    (1000.5, 1300.25),
    (-300.0, -100.0),
    (1e6, 1e6 + 3),
    (-8.0, 1.0),
    (1e-30, 3e-30),
    (0.0, 1e30),
    (0.0, 1e31),
    (-1e300, 1e300),
]


def near_ties(lo: float, hi: float, bits: int, dtype: str, levels: int = 300, ulps: int = 4) -> np.ndarray:
    """Values of ``dtype`` whose formula value lies on or within a few of their own ulps of k + 1/2,
    for ``levels`` values of k spread over the range: the ties and the pixels either side."""
    top = 2**bits - 1
    k = np.unique(np.linspace(0, top - 1, levels).round())
    with np.errstate(over="ignore"):  # windows beyond float16's range: infinities, which callers drop
        x = (lo + (k + 0.5) * ((hi - lo) / top)).astype(dtype)
        steps = [x]
        for direction in (np.inf, -np.inf):
            y = x
            for _ in range(ulps):
                y = np.nextafter(y, np.array(direction, dtype))
                steps.append(y)
    return np.concatenate(steps)


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", ">f4"])
def test_float_pixels_on_and_beside_every_kind_of_tie(dtype, bits, path):
    for lo, hi in FLOAT_WINDOWS:
        x = near_ties(lo, hi, bits, dtype, levels=60 if dtype == "float16" else 300)
        x = x[np.isfinite(x)]
        assert_quantised(quantise(x, lo, hi, bits), x, lo, hi, bits)


def test_the_tie_tests_reach_exact_ties_and_near_ones():
    """near_ties yields formula values exactly on k + 1/2 and within a few float64 ulps of it."""
    x = near_ties(0.0, 65535.0, 16, "float64")
    distance = np.abs(formula_value(x, 0.0, 65535.0, 16) % 1 - 0.5)
    assert np.count_nonzero(distance == 0) > 50 and np.count_nonzero((distance > 0) & (distance < 1e-10)) > 500
    x = near_ties(-0.0005, 0.0015, 8, "float32")
    distance = np.abs(formula_value(x, -0.0005, 0.0015, 8) % 1 - 0.5)
    assert np.count_nonzero(distance < float32_error_bound(-0.0005, 0.0015, 8)) > 500


@pytest.mark.parametrize("bits", [8, 16])
def test_random_float_images_near_ties(bits, path):
    rng = np.random.default_rng(7)
    for lo, hi in FLOAT_WINDOWS[:11]:
        x = np.concatenate([near_ties(lo, hi, bits, "float32"), rng.uniform(lo - (hi - lo), hi + (hi - lo), 20000)])
        for dtype in ("float32", "float64"):
            image = rng.permutation(x).astype(dtype)
            image = image[: image.size // 50 * 50].reshape(-1, 50)
            assert_quantised(quantise(image, lo, hi, bits), image, lo, hi, bits)


SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-45, -1e-45, 3.4e38, -3.4e38, 1e-38, 1e308, -1e308]


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_special_values(dtype, bits, path):
    with np.errstate(over="ignore"):
        x = np.array(SPECIALS, dtype)
    for lo, hi in [(-1.0, 1.0), (0.0, 1.0), (1e-30, 3e-30), (1e6, 1e6 + 3)]:
        q = quantise(x, lo, hi, bits)
        assert q[:3].tolist() == [0, 2**bits - 1, 0]  # NaN -> 0, +Inf -> top, -Inf -> 0
        assert_quantised(q, x, lo, hi, bits)


WIDE_INTEGERS = ["int32", "uint32", "int64", "uint64"]


@pytest.mark.parametrize("dtype", WIDE_INTEGERS)
def test_wide_integers_convert_to_float64_first(dtype, path):
    info = np.iinfo(dtype)
    x = np.array([info.min, info.max, 0, 1, 2**53 + 1 if info.max > 2**53 else info.max - 1, 100, 5000], dtype)
    for lo, hi, bits in [(0, 30000, 8), (0, 200, 16), (float(info.min), float(info.max), 16), (2**53, 2**53 + 8, 8)]:
        assert_quantised(quantise(x, lo, hi, bits), x, lo, hi, bits)


def test_sixteen_bits_spans_the_full_range(path):
    x = np.linspace(-1, 3, 4001, dtype=np.float32)
    q = quantise(x, -1, 3, 16)
    assert q.dtype == np.uint16 and q[0] == 0 and q[-1] == 65535
    assert_quantised(q, x, -1, 3, 16)


def test_strided_views_and_out_buffer(path):
    volume = np.random.default_rng(1).normal(0, 1, (30, 7, 40)).astype(np.float32)
    view = np.moveaxis(volume, 1, 0)  # (7, 30, 40), not contiguous
    out = np.zeros(view.shape, np.uint8)
    assert quantise(view, -2, 2, 8, out=out) is out
    assert_quantised(out, view, -2, 2, 8)
    counts = (volume * 1000).astype(np.int16)[:, ::2]  # a table lookup into a strided output
    out = np.zeros((40, 30, 4), np.uint16).transpose(1, 2, 0)
    assert quantise(counts, -1500, 1500, 16, out=out) is out
    assert_quantised(out, counts, -1500, 1500, 16)


def test_zero_dimensional_and_empty_images(path):
    for x in (np.float32(0.5), np.uint16(5000), np.zeros((0, 3), np.float32), np.zeros(0, np.int16)):
        q = quantise(x, 0, 30000 if np.asarray(x).dtype.kind in "iu" else 1, 8)
        assert q.shape == np.shape(x) and q.dtype == np.uint8
    assert quantise(np.uint16(5000), 0, 30000, 8) == 42


def test_large_image_crosses_internal_blocks(path):
    x = np.random.default_rng(2).uniform(-5, 5, (1100, 1000)).astype(np.float32)
    assert_quantised(quantise(x, -4, 4, 16), x, -4, 4, 16)
    assert_quantised(quantise(x, -4, 4, 8), x, -4, 4, 8)


CLIPPING_CASES = [
    ("float32", (1100, 1000)),  # crosses the compiled loop's tally blocks and the numpy blocks
    ("float64", (300, 200)),
    ("float16", (50, 60)),
    ("uint16", (300, 200)),
    (">u2", (30, 20)),  # byte-swapped: a table lookup
    ("int16", (300, 200)),
    ("uint8", (30, 20)),
    ("int32", (30, 20)),
    ("bool", (30, 20)),
]


@pytest.mark.parametrize("bits", [8, 16])
@pytest.mark.parametrize("dtype, shape", CLIPPING_CASES)
def test_clipping_tallies_equal_numpy_counts(dtype, shape, bits, path):
    """The counts quantise adds (pixels at 0, at the top level, NaN) are numpy's counts of the
    output and input, for every kind of input, in every code path, over strided views too."""
    rng = np.random.default_rng(7)
    x = rng.normal(100, 60, shape)
    if np.dtype(dtype).kind == "f":
        x[rng.random(shape) < 0.01] = np.nan
        x[rng.random(shape) < 0.01] = np.inf
    x, (lo, hi) = (x.astype(dtype), (40.0, 170.0)) if dtype != "bool" else (x > 100, (0.2, 0.8))
    for image in (x, x[::2, 1:]):
        counts = np.full(3, 5, np.int64)  # added to, not overwritten
        q = quantise(image, lo, hi, bits, counts=counts)
        nan = np.count_nonzero(np.isnan(image)) if image.dtype.kind == "f" else 0
        assert counts.tolist() == [5 + np.count_nonzero(q == 0), 5 + np.count_nonzero(q == 2**bits - 1), 5 + nan]
        assert counts[0] > 5 and counts[1] > 5


def test_clipping_tallies_must_be_three_int64():
    with pytest.raises(ValueError, match="int64 array of 3"):
        quantise(np.zeros(4), 0, 1, 8, counts=np.zeros(3, np.int32))


@pytest.mark.parametrize("lo, hi", [(1.0, 1.0), (2.0, 1.0), (0.0, float("nan")), (float("-inf"), 1.0), (-1e308, 1e308)])
def test_bad_windows_are_user_errors(lo, hi):
    with pytest.raises(TomotiffError):
        quantise(np.zeros(3), lo, hi, 8)


def test_bits_other_than_8_or_16_are_refused():
    with pytest.raises(TomotiffError, match="8 or 16"):
        quantise(np.zeros(3), 0, 1, 12)


def test_working_precision_follows_input_window_and_depth():
    assert working_dtype(np.dtype(np.uint16), 0, 100, 8) == np.float32
    assert working_dtype(np.dtype(np.float32), -0.0017, 0.0017, 8) == np.float32
    assert working_dtype(np.dtype(np.float32), -0.0017, 0.0017, 16) == np.float64  # the tie margin would catch 2-3 %
    assert working_dtype(np.dtype(np.int32), 0, 100, 8) == np.float64  # not exact in float32
    assert working_dtype(np.dtype(np.float64), 0, 1, 8) == np.float64
    assert working_dtype(np.dtype(np.uint16), 30000, 30010, 8) == np.float64  # narrow window far from zero
    assert working_dtype(np.dtype(np.float32), 0, 1e31, 8) == np.float64  # float32's constants leave its range


@pytest.mark.parametrize("bits", [8, 16])
def test_the_float32_error_bound_holds(bits):
    """|float32 value - float64 value| <= float32_error_bound on ties, random values, the window's
    ends and beyond, for windows the float32 path takes (the bound is derived in its docstring),
    and it is not loose by more than a factor of 2 everywhere."""
    rng = np.random.default_rng(11)
    ratios = []
    for lo, hi in [
        (0.0, 1.0),
        (-0.0005, 0.0015),
        (-8.0, 1.0),
        (8.0, 9.0),
        (1000.5, 1300.25),
        (1e-30, 3e-30),
        (0.0, 1e30),
        (-3.0, 40000.0),
        (0.1, 0.30000001),
    ]:
        assert working_dtype(np.dtype(np.float32), lo, hi, 8) == np.float32
        x = np.concatenate(
            [
                near_ties(lo, hi, bits, "float32"),
                rng.uniform(lo - (hi - lo), hi + (hi - lo), 100000),
                [lo, hi, np.nextafter(lo, -np.inf), np.nextafter(hi, np.inf)],
            ]
        ).astype(np.float32)
        top = np.float32(2**bits - 1)
        t = (x - np.float32(lo)) * np.float32((2**bits - 1) / (hi - lo))
        t = np.fmin(np.fmax(t, np.float32(0)), top)
        error = np.abs(t.astype(np.float64) - formula_value(x, lo, hi, bits))
        ratios.append(error.max() / float32_error_bound(lo, hi, bits))
    assert max(ratios) <= 1 and max(ratios) >= 0.5, ratios


def test_narrow_window_far_from_zero_is_still_exact(path):
    x = np.arange(29990, 30020, dtype=np.uint16)
    assert_quantised(quantise(x, 30000, 30010, 8), x, 30000, 30010, 8)


def test_tables_are_cached_per_window_and_read_only():
    quantisation._table.cache_clear()
    x = np.arange(-5, 5, dtype=np.int8)
    quantise(x, -3, 3, 8)
    quantise(x[::-1], -3, 3, 8)
    info = quantisation._table.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    assert not quantisation._table(np.dtype(np.int8), -3.0, 3.0, 8).flags.writeable


def test_dequantise_recovers_values_within_half_a_level():
    x = np.random.default_rng(3).uniform(-0.002, 0.002, 10000)
    q = quantise(x, -0.002, 0.002, 16)
    step = 0.004 / 65535
    assert np.max(np.abs(dequantise(q, -0.002, 0.002, 16) - x)) <= step / 2 + 1e-12


def test_the_formula_string_says_the_order_of_operations():
    assert "((clip(x, lo, hi) - lo) / (hi - lo)) * (2**bits - 1)" in quantisation.FORMULA
    assert "float64" in quantisation.FORMULA and "NaN -> 0" in quantisation.FORMULA


DTYPES = ["bool", "uint8", "int8", "uint16", "int16", "uint32", "int32", "int64", "float16", "float32", "float64"]


@st.composite
def images_and_windows(draw):
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    if dtype.kind == "f":
        elements = st.floats(width=dtype.itemsize * 8, allow_nan=True, allow_infinity=True)
    elif dtype.kind == "b":
        elements = st.booleans()
    else:
        elements = st.integers(int(np.iinfo(dtype).min), int(np.iinfo(dtype).max))
    x = draw(hnp.arrays(dtype, hnp.array_shapes(min_dims=0, max_dims=3, max_side=12), elements=elements))
    bound = st.one_of(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), st.integers(-70000, 70000))
    lo, hi = sorted([float(draw(bound)), float(draw(bound))])
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


def test_the_reference_is_the_formula_as_numpy_writes_it():
    """conftest's reference, checked once against the formula spelled out by hand."""
    x = np.array([5000.0, 100.0, np.nan, -np.inf, np.inf, 29999.0])
    by_hand = [np.rint(((min(max(v, 0.0), 30000.0) - 0.0) / (30000.0 - 0.0)) * 255.0) if v == v else 0.0 for v in x]
    assert expected_quantised(x, 0, 30000, 8).tolist() == by_hand == [42, 1, 0, 0, 255, 255]


def test_the_compiled_loop_is_built_wherever_a_compiler_is():
    """The loop is optional (an install without a C compiler runs numpy), so a C file that no longer
    compiles would pass unnoticed, every compiled-loop test skipped: where a compiler is, it must be built."""
    import shutil
    import sysconfig

    compiler = shutil.which(sysconfig.get_config_var("CC").split()[0]) if sysconfig.get_config_var("CC") else None
    if compiler is None:
        pytest.skip("no C compiler here: the install runs the numpy passes")
    assert quantisation._quantise_loop is not None, "src/tomotiff/_quantise_loop.c did not build: pip install -e . -v"
