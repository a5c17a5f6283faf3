"""The global window: percentiles of every finite pixel of the selected images, streamed.

Every result is compared with ``np.percentile`` over the whole selection (finite pixels, as
float64), and must be equal: the streaming selection is exact, not an estimate.
"""

import tracemalloc

import h5py
import numpy as np
import pytest
import tifffile

from tomotiff import TomotiffError, global_percentiles, source
from tomotiff.selection import Crop
from tomotiff.source import Hdf5Source, TiffDirSource
from tomotiff.synthetic import raw_keys, write_gda_raw, write_savu_recon, write_tiff_dir
from tomotiff.window import WindowRequest, choose_window


def global_window(src, percent: float, sample: int = 1, progress=False, indices=None):
    """``--window global -p percent --sample sample`` over ``indices`` (default: the source's range)."""
    indices = np.arange(src.begin, src.stop) if indices is None else indices
    return choose_window(src, indices, WindowRequest(percent=percent, method="global", sample=sample), progress)


def expected(values: np.ndarray, percent: float) -> tuple[float, float]:
    """The definition: numpy's linear percentiles of the finite pixels, in float64."""
    values = np.asarray(values).ravel()
    finite = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    lo, hi = np.percentile(finite.astype(np.float64), [percent, 100 - percent])
    return float(lo), float(hi)


def window_of(src, percent: float, sample: int = 1, indices=None) -> tuple[float, float]:
    window = global_window(src, percent, sample, indices=indices)
    assert (window.method, window.reference, window.percent, window.sample) == ("global", None, percent, sample)
    return window.lo, window.hi


def write_h5(path, array: np.ndarray, chunks=None) -> str:
    with h5py.File(path, "w") as file:
        file.create_dataset("data", data=array, chunks=chunks)
    return str(path)


@pytest.fixture
def small_reads(monkeypatch):
    """Tiny tiles and work blocks, so small files exercise row bands, many blocks and pieces."""
    monkeypatch.setattr(source, "TILE_BYTES", 4096)
    monkeypatch.setattr(global_percentiles, "BLOCK_ELEMENTS", 100)


@pytest.fixture
def savu_with_nonfinite(tmp_path):
    """A Savu-like float32 recon (height, index, width), chunked, with NaN and +-Inf inserted."""
    path = tmp_path / "recon.nxs"
    dataset = write_savu_recon(str(path), height=40, count=30, width=36, chunks=(8, 4, 16))
    with h5py.File(path, "r+") as file:
        data = file[dataset]
        data[3, 5, :7] = np.nan
        data[0, 0, 0] = np.inf
        data[39, 29, 35] = -np.inf
        data[10, 12, 3:9] = [np.inf, -np.inf, np.nan, np.inf, -np.nan, 0.0]
        data[20, 7, 1] = -0.0
        volume = data[...]
    return str(path), dataset, volume


@pytest.mark.parametrize("percent", [0.1, 1.0, 2.5, 33.3])
def test_float32_middle_axis_with_nan_inf_equals_numpy(savu_with_nonfinite, small_reads, percent):
    path, dataset, volume = savu_with_nonfinite
    src = Hdf5Source(path, dataset, axis=1, begin=2, stop=27)
    try:
        assert window_of(src, percent) == expected(volume[:, 2:27, :], percent)
    finally:
        src.close()


def test_float32_sample_every_third_image(savu_with_nonfinite, small_reads):
    path, dataset, volume = savu_with_nonfinite
    src = Hdf5Source(path, dataset, axis=1, begin=2, stop=29)
    try:
        got = window_of(src, 0.5, sample=3)
    finally:
        src.close()
    assert got == expected(volume[:, 2:29:3, :], 0.5)  # images 2, 5, ..., 26
    assert got != expected(volume[:, 2:29, :], 0.5)  # the sample really is a subset


def test_sample_larger_than_the_selection_uses_the_first_image(savu_with_nonfinite):
    path, dataset, volume = savu_with_nonfinite
    src = Hdf5Source(path, dataset, axis=1, begin=4, stop=9)
    try:
        assert window_of(src, 1.0, sample=100) == expected(volume[:, 4, :], 1.0)
    finally:
        src.close()


@pytest.mark.parametrize("sample", [1, 3])
def test_uint16_raw_scan_is_exact(tmp_path, sample):
    path = tmp_path / "raw.nxs"
    dataset = write_gda_raw(str(path), projections=30, flats=4, darks=4, height=24, width=32)
    with h5py.File(path) as file:
        volume = file[dataset][...]
    src = Hdf5Source(str(path), dataset, axis=0, begin=3, stop=35)
    try:
        assert window_of(src, 0.1, sample) == expected(volume[3:35:sample], 0.1)
    finally:
        src.close()


@pytest.mark.parametrize("sample", [1, 4])
def test_only_the_selected_indices_count(tmp_path, small_reads, sample):
    """A raw scan restricted to its projections (candidate images with gaps): the darks and
    flats around them take no part, and sampling steps through the selected images."""
    path = tmp_path / "raw.nxs"
    dataset = write_gda_raw(str(path), projections=21, flats=6, darks=6, height=12, width=10)
    with h5py.File(path) as file:
        volume = file[dataset][...]
    keys = raw_keys(21, 6, 6)
    projections = np.flatnonzero(keys == 0)
    chosen = np.concatenate([np.flatnonzero(keys == 2)[:3], projections[2:]])  # two runs, with a gap
    src = Hdf5Source(str(path), dataset)
    try:
        assert window_of(src, 0.7, sample, chosen) == expected(volume[chosen[::sample]], 0.7)
    finally:
        src.close()


def test_cropped_images(savu_with_nonfinite, tmp_path, small_reads):
    path, dataset, volume = savu_with_nonfinite
    src = Hdf5Source(path, dataset, axis=1, begin=1, stop=25, crop=Crop(3, 2, 5, 1))
    try:
        assert window_of(src, 0.3, 2) == expected(volume[3:-2, 1:25:2, 5:-1], 0.3)
    finally:
        src.close()
    directory = tmp_path / "tiffs"
    paths = write_tiff_dir(str(directory), "s_%03d.tif", count=6, height=20, width=26)
    stack = np.stack([tifffile.imread(p) for p in paths])
    src = TiffDirSource(str(directory), "s_%03d.tif", crop=Crop(4, 0, 0, 7))
    assert window_of(src, 2.0) == expected(stack[:, 4:, :-7], 2.0)


@pytest.mark.parametrize("dtype", ["float32", "uint16"])
def test_tiff_directory(tmp_path, small_reads, dtype):
    directory = tmp_path / "tiffs"
    paths = write_tiff_dir(str(directory), "slice_%04d.tif", count=14, height=20, width=26, dtype=dtype, start=5)
    if dtype == "float32":
        image = tifffile.imread(paths[3])
        image[2, :4] = [np.nan, np.inf, -np.inf, np.nan]
        tifffile.imwrite(paths[3], image, metadata=None)
    volume = np.stack([tifffile.imread(p) for p in paths])
    src = TiffDirSource(str(directory), "slice_%04d.tif", begin=6, stop=18)
    assert window_of(src, 0.2) == expected(volume[1:13], 0.2)
    assert window_of(src, 0.2, sample=3) == expected(volume[1:13:3], 0.2)


def test_percent_zero_gives_exact_min_and_max(savu_with_nonfinite):
    path, dataset, volume = savu_with_nonfinite
    src = Hdf5Source(path, dataset, axis=1)
    try:
        lo, hi = window_of(src, 0)
    finally:
        src.close()
    finite = volume[np.isfinite(volume)]
    assert (lo, hi) == (float(finite.min()), float(finite.max()))


def test_error_is_zero_well_under_one_grey_level(tmp_path, small_reads):
    """The documented guarantee: exact, so in particular far below (hi - lo) / 65535."""
    volume = np.random.default_rng(5).lognormal(0, 2, (9, 33, 27)).astype(np.float32)
    src = Hdf5Source(write_h5(tmp_path / "v.h5", volume, chunks=(3, 11, 27)), "data")
    try:
        lo, hi = window_of(src, 0.37)
    finally:
        src.close()
    want_lo, want_hi = expected(volume, 0.37)
    level = (want_hi - want_lo) / 65535
    assert abs(lo - want_lo) <= 1e-6 * level and abs(hi - want_hi) <= 1e-6 * level
    assert (lo, hi) == (want_lo, want_hi)


DTYPES = [
    "float16",
    "float32",
    "float64",
    "int8",
    "uint8",
    "int16",
    "uint16",
    "int32",
    "uint32",
    "int64",
    "uint64",
    "bool",
]


def random_volume(rng, dtype: str, shape) -> np.ndarray:
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.startswith("float"):
        volume = rng.normal(0, 10.0 ** rng.integers(-3, 4), shape).astype(dtype)
        volume.flat[rng.integers(0, volume.size, volume.size // 8)] = np.nan
        volume.flat[rng.integers(0, volume.size, 3)] = np.inf
        volume.flat[rng.integers(0, volume.size, 3)] = -np.inf
        volume.flat[rng.integers(0, volume.size, 3)] = -0.0
        volume.flat[rng.integers(0, volume.size, volume.size // 10)] = volume.flat[0]  # many ties
        return volume
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@pytest.mark.parametrize("dtype", DTYPES)
def test_every_dtype_equals_numpy(tmp_path, small_reads, dtype):
    rng = np.random.default_rng(abs(hash(dtype)) % 1000)
    volume = random_volume(rng, dtype, (6, 17, 23))
    src = Hdf5Source(write_h5(tmp_path / "v.h5", volume), "data")
    try:
        for percent in [0, 0.1, 7.25, 25, 49.9]:
            want = expected(volume, percent)
            if want[0] == want[1]:  # e.g. the median of a bool volume: an empty window
                with pytest.raises(TomotiffError, match="empty global window"):
                    global_window(src, percent)
            else:
                assert window_of(src, percent) == want, percent
    finally:
        src.close()


def test_nan_payloads_and_negative_nans_are_ignored(tmp_path):
    bits = np.random.default_rng(3).normal(1, 1, (4, 8, 8)).astype(np.float32).view(np.uint32)
    bits[0, 0, :4] = [0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001]  # quiet/signalling, both signs
    volume = bits.view(np.float32)
    src = Hdf5Source(write_h5(tmp_path / "v.h5", volume), "data")
    try:
        assert window_of(src, 1) == expected(volume, 1)
    finally:
        src.close()


@pytest.mark.parametrize("dtype", ["float64", "int64", "uint64"])
def test_64_bit_types_exact_through_every_digit(tmp_path, small_reads, monkeypatch, dtype):
    """With nothing collected, the selection resolves all four 16-bit digits in four passes."""
    monkeypatch.setattr(global_percentiles, "COLLECT_LIMIT", 0)
    volume = random_volume(np.random.default_rng(9), dtype, (5, 13, 11))
    src = Hdf5Source(write_h5(tmp_path / "v.h5", volume), "data")
    images = []
    try:
        window = global_window(src, 3.3, progress=images.append)
    finally:
        src.close()
    assert (window.lo, window.hi) == expected(volume, 3.3)
    assert sum(images) == 4 * 5


@pytest.mark.parametrize(
    ("dtype", "passes"), [("uint8", 1), ("uint16", 1), ("int16", 1), ("float32", 2), ("int32", 2), ("float64", 2)]
)
def test_number_of_reads(tmp_path, dtype, passes):
    volume = random_volume(np.random.default_rng(1), dtype, (7, 9, 10))
    src = Hdf5Source(write_h5(tmp_path / "v.h5", volume), "data")
    images = []
    try:
        global_window(src, 0.1, progress=images.append)
        assert sum(images) == passes * 7
        images.clear()
        global_window(src, 0.1, sample=2, progress=images.append)
        assert sum(images) == passes * 4
    finally:
        src.close()


def test_volume_larger_than_a_tile_stays_in_bounded_memory(tmp_path):
    """96 MB of float32 (three times a 32 MB read tile): exact, and peak numpy memory well
    below the volume's size (tracemalloc sees numpy's allocations)."""
    count, height, width = 24, 1024, 1024
    assert count * height * width * 4 > 2 * source.TILE_BYTES
    rng = np.random.default_rng(11)
    path = tmp_path / "big.h5"
    with h5py.File(path, "w") as file:
        data = file.create_dataset("data", (count, height, width), np.float32)
        for index in range(count):
            image = rng.normal(index, 1.0, (height, width)).astype(np.float32)
            image[index, :3] = np.nan
            data[index] = image
    src = Hdf5Source(str(path), "data", begin=1, stop=23)
    tracemalloc.start()
    try:
        lo, hi = window_of(src, 0.05)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        src.close()
    assert peak < count * height * width * 4 // 2
    with h5py.File(path) as file:
        assert (lo, hi) == expected(file["data"][1:23], 0.05)


def test_constant_volume_suggests_an_explicit_window(tmp_path):
    volume = np.full((5, 6, 7), 3.5, np.float32)
    volume[1, 1, 1] = np.nan
    src = Hdf5Source(write_h5(tmp_path / "v.h5", volume), "data")
    try:
        with pytest.raises(TomotiffError, match="--lo/--hi"):
            global_window(src, 0.1)
    finally:
        src.close()


def test_no_finite_pixel_suggests_an_explicit_window(tmp_path):
    volume = np.full((3, 4, 5), np.nan, np.float32)
    volume[0, 0, :2] = [np.inf, -np.inf]
    src = Hdf5Source(write_h5(tmp_path / "v.h5", volume), "data")
    try:
        with pytest.raises(TomotiffError, match="no finite pixels.*--lo/--hi"):
            global_window(src, 0.1)
    finally:
        src.close()


@pytest.mark.parametrize(
    ("percent", "sample", "message"),
    [(50, 1, r"\[0, 50\)"), (-1, 1, r"\[0, 50\)"), (1, 0, "sample"), (1, 1.5, "sample")],
)
def test_bad_arguments_are_refused(tmp_path, percent, sample, message):
    src = Hdf5Source(write_h5(tmp_path / "v.h5", np.arange(60.0).reshape(3, 4, 5)), "data")
    try:
        with pytest.raises(TomotiffError, match=message):
            global_window(src, percent, sample)
    finally:
        src.close()
