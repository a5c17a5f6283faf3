"""tomotiff.stats: the reference-image statistics the workflow writes to stats.json."""

import numpy as np
import pytest

from tomotiff import synthetic
from tomotiff.errors import TomotiffError
from tomotiff.source import Hdf5Source, TiffDirSource
from tomotiff.stats import HISTOGRAM_BINS, PERCENTILES, image_stats, percentile_key, scan_stats
from tomotiff.window import WindowRequest, choose_window, percentile_window

REQUIRED_PERCENTILES = ["0", "0.1", "1", "50", "99", "99.9", "100"]


def test_percentile_keys_are_the_documented_ones():
    assert [percentile_key(p) for p in PERCENTILES] == REQUIRED_PERCENTILES


def test_statistics_of_a_float_image():
    image = np.random.default_rng(1).normal(5, 2, (40, 30)).astype(np.float32)
    stats = image_stats(image)
    values = image.astype(np.float64).ravel()
    assert stats["pixels"] == stats["finite"] == 1200 and stats["nonfinite"] == 0
    assert stats["min"] == float(values.min()) and stats["max"] == float(values.max())
    assert stats["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert stats["std"] == pytest.approx(values.std(), rel=1e-12)
    expected = np.percentile(values, [0, 0.1, 1, 50, 99, 99.9, 100])
    assert list(stats["percentiles"]) == REQUIRED_PERCENTILES
    assert list(stats["percentiles"].values()) == [float(v) for v in expected]
    histogram = stats["histogram"]
    assert histogram["bins"] == HISTOGRAM_BINS == len(histogram["counts"]) == len(histogram["edges"]) - 1
    assert sum(histogram["counts"]) == 1200
    assert histogram["edges"][0] == stats["min"] and histogram["edges"][-1] == stats["max"]


@pytest.mark.parametrize("percent", [0.0, 0.1, 1.0])
def test_percentiles_are_exactly_the_reference_window(percent):
    """stats.json's P and 100-P percentiles are the lo/hi that a window with -p P picks."""
    image = np.random.default_rng(2).random((17, 23)).astype(np.float32)
    stats = image_stats(image)
    lo, hi = percentile_window(image, percent, 0)
    assert stats["percentiles"][percentile_key(percent)] == lo
    assert stats["percentiles"][percentile_key(100 - percent)] == hi


def test_nan_and_inf_are_counted_but_left_out():
    image = np.arange(12, dtype=np.float32).reshape(3, 4)
    image[0, 0], image[1, 1], image[2, 2] = np.nan, np.inf, -np.inf
    stats = image_stats(image)
    assert stats["nonfinite"] == 3 and stats["finite"] == 9
    assert stats["min"] == 1.0 and stats["max"] == 11.0
    assert sum(stats["histogram"]["counts"]) == 9


def test_an_image_without_finite_pixels_has_no_statistics():
    stats = image_stats(np.full((4, 4), np.nan, np.float32))
    assert stats["finite"] == 0 and stats["nonfinite"] == 16
    assert stats["min"] is stats["max"] is stats["mean"] is None
    assert all(v is None for v in stats["percentiles"].values())
    assert stats["histogram"]["counts"] == []


def test_integer_and_constant_images():
    stats = image_stats(np.array([[0, 65535], [100, 100]], np.uint16))
    assert stats["min"] == 0.0 and stats["max"] == 65535.0 and stats["percentiles"]["50"] == 100.0
    constant = image_stats(np.full((3, 3), 7, np.uint8), bins=4)
    assert constant["min"] == constant["max"] == 7.0 and sum(constant["histogram"]["counts"]) == 9
    with pytest.raises(TomotiffError):
        image_stats(np.zeros((2, 2)), bins=0)


def test_scan_stats_of_an_hdf5_volume_with_the_middle_axis(tmp_path):
    path = tmp_path / "recon.nxs"
    synthetic.write_savu_recon(str(path), height=12, count=9, width=10)
    source = Hdf5Source(str(path), "/entry/final_result_tomo/data", 1, 2, 8)
    try:
        window = choose_window(source, np.arange(source.begin, source.stop), WindowRequest(percent=1.0))
        stats = scan_stats(source, 5, {"u8": window})
        image = source.read_image(5)
    finally:
        source.close()
    assert stats["shape"] == [12, 9, 10] and stats["axis"] == 1 and stats["image_shape"] == [12, 10]
    assert stats["dataset"] == "/entry/final_result_tomo/data" and stats["source"] == str(path)
    assert stats["dtype"] == "float32" and stats["reference"] == 5
    assert stats["range"] == {"begin": 2, "stop": 8, "count": 6}
    assert stats["windows"]["u8"] == window.as_dict() and window.reference == 5  # the middle of 2..7
    assert stats["percentiles"]["1"] == window.lo and stats["percentiles"]["99"] == window.hi
    assert stats["min"] == float(image.min()) and "tomotiff_version" in stats


def test_scan_stats_of_a_tiff_directory(tmp_path):
    synthetic.write_tiff_dir(str(tmp_path), "raw_%05d.tif", count=5, height=6, width=7, dtype="uint16")
    source = TiffDirSource(str(tmp_path), "raw_%05d.tif", 1, None)
    stats = scan_stats(source, 3)
    assert stats["dataset"] is None and stats["axis"] == 0 and stats["shape"] == [4, 6, 7]
    assert stats["input_pattern"] == "raw_%05d.tif" and stats["range"] == {"begin": 1, "stop": 5, "count": 4}
    assert stats["dtype"] == "uint16" and stats["windows"] == {}


def test_a_missing_reference_image_is_a_user_error(tmp_path):
    path = tmp_path / "raw.nxs"
    synthetic.write_gda_raw(str(path), projections=4, flats=2, darks=2, height=5, width=6)
    source = Hdf5Source(str(path), "/entry1/instrument/pco1_hw_hdf/data", 0, 0, None)
    try:
        with pytest.raises(TomotiffError, match="reference image"):
            scan_stats(source, 99)
    finally:
        source.close()
