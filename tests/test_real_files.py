"""The commands on files written by real beamline software (../shared/data/real, read-only)."""

import hashlib

import h5py
import numpy as np
import pytest
import tifffile

from conftest import assert_quantised, read_tiff, run_cli, tiff_names


@pytest.fixture(scope="module")
def checksums(real) -> dict[str, str]:
    lines = (real / "SHA256SUMS").read_text().split("\n")
    return {
        name.strip().lstrip("*"): digest for digest, name in (line.split(maxsplit=1) for line in lines if line.strip())
    }


def test_savu_external_link_falls_back_beside_the_file(real, tmp_path):
    source = real / "savu-i12-45657" / "45657.nxs"
    done = run_cli("nxs2tiff", "-d", "/entry/final_result_tomo/data", "-i", "1", "--fp", source, tmp_path)
    assert done.returncode == 0, done.stderr
    assert tiff_names(tmp_path) == [f"image_{i:05d}.tif" for i in range(10)]
    with h5py.File(source) as file:
        expected = file["/entry/final_result_tomo/data"][:, 4, :]
    image, meta = read_tiff(tmp_path / "image_00004.tif")
    assert image.shape == (20, 192) and np.array_equal(image, expected)
    assert meta["dataset"] == "/entry/final_result_tomo/data" and meta["source"] == str(source)


def test_savu_default_signal_reference_window(real, tmp_path):
    """No -d: the one NXdata group with a signal is used; the window comes from the middle image."""
    source = real / "savu-i12-45657" / "45657.nxs"
    done = run_cli("nxs2tiffux", "-i", "1", "-u", "16", "-p", "1", source, tmp_path)
    assert done.returncode == 0, done.stderr
    with h5py.File(source) as file:
        volume = file["/entry/final_result_tomo/data"][()]
    lo, hi = np.percentile(volume[:, 5, :].astype(np.float64), [1, 99])
    assert f"lo={float(lo)!r} hi={float(hi)!r}" in done.stdout
    image, meta = read_tiff(tmp_path / "image_00009.tif")
    assert_quantised(image, volume[:, 9, :], lo, hi, 16)
    assert meta["window"] == {
        "lo": float(lo),
        "hi": float(hi),
        "method": "reference",
        "reference": 5,
        "percent": 1.0,
        "sample": None,
        "mask": None,
    }


def test_k11_raw_uint16_through_external_link(real, tmp_path):
    source = real / "k11-diad-18014" / "k11-18014.nxs"
    done = run_cli(
        "nxs2tiffux",
        "-d",
        "/entry/imaging/data",
        "-b",
        "100",
        "-s",
        "140",
        "-u",
        "8",
        "--lo",
        "40",
        "--hi",
        "60430",
        source,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert tiff_names(tmp_path)[0] == "image_00100.tif" and len(tiff_names(tmp_path)) == 40
    with h5py.File(source) as file:
        expected = file["/entry/imaging/data"][139]
    image, meta = read_tiff(tmp_path / "image_00139.tif")
    assert_quantised(image, expected, 40, 60430, 8)
    assert meta["dtype_in"] == "uint16" and meta["dtype_out"] == "uint8"


def test_dangling_external_link_names_the_missing_file(real, tmp_path):
    out = tmp_path / "out"
    done = run_cli("nxs2tiff", "-d", "/entry1/instrument/pco1_hw_hdf/data", real / "i13-24888-dangling-link.nxs", out)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "pco1-24888.hdf" in done.stderr and "missing" in done.stderr
    assert not out.exists()


def test_httomo_file_without_nexus_attributes_lists_datasets(real, tmp_path):
    done = run_cli("nxs2tiffux", real / "httomo-tomo-data.h5", tmp_path / "out")
    assert done.returncode == 2 and "/tomo/data (20, 10, 192) float32" in done.stderr and "-d" in done.stderr
    done = run_cli(
        "nxs2tiffux", "-d", "/tomo/data", "-i", "2", "-s", "3", real / "httomo-tomo-data.h5", tmp_path / "out"
    )
    assert done.returncode == 0 and len(tiff_names(tmp_path / "out")) == 3
    image, _ = read_tiff(tmp_path / "out" / "image_00002.tif")
    assert image.shape == (20, 10)


def test_tomopy_data_exchange_middle_axis(real, tmp_path):
    done = run_cli("nxs2tiff", "--fp", "-d", "/exchange/data", "-i", "1", real / "tomopy-tooth.h5", tmp_path)
    assert done.returncode == 0, done.stderr
    with h5py.File(real / "tomopy-tooth.h5") as file:
        expected = file["/exchange/data"][:, 1, :]
    image, _ = read_tiff(tmp_path / "image_00001.tif")
    assert np.array_equal(image, expected)


def test_savu_raw_tiffs_context4(real, tmp_path):
    done = run_cli(
        "tiff2tiffux",
        "-i",
        "raw_%05d.tiff",
        "-o",
        "raw_u8_%05d.tif",
        "-u",
        "8",
        "--use_ref",
        "-r",
        "3",
        real / "savu-raw-tiffs",
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert len(tiff_names(tmp_path)) == 10  # stop defaults to the last consecutive file
    reference = tifffile.imread(real / "savu-raw-tiffs" / "raw_00003.tiff")
    source = tifffile.imread(real / "savu-raw-tiffs" / "raw_00009.tiff")
    image, _ = read_tiff(tmp_path / "raw_u8_00009.tif")
    assert_quantised(image, source, float(reference.min()), float(reference.max()), 8)


def test_savu_float_tiffs_context3(real, tmp_path):
    done = run_cli("tiff2tiffux", "-i", "flat_%05d.tiff", "-b", "1", "-u", "16", real / "savu-float-tiffs", tmp_path)
    assert done.returncode == 0, done.stderr
    source = tifffile.imread(real / "savu-float-tiffs" / "flat_00001.tiff")
    image, _ = read_tiff(tmp_path / "flat_00001.tiff")
    assert_quantised(image, source, float(source.min()), float(source.max()), 16)


def test_real_inputs_are_never_modified(real, checksums):
    """Runs last in this module: every real file still matches SHA256SUMS."""
    for name, digest in checksums.items():
        assert hashlib.sha256((real / name).read_bytes()).hexdigest() == digest, name
