"""Every command line of the beamline page (../shared/seed), verbatim but for the file paths.

Each runs on synthetic data in the page's layouts: (H, index, W) float32 with -i 1; a rank-4
(H, 1, W, index) dataset at a path without a leading slash, run as `python nxs2tiff.py`; a
uint16 raw scan of 2159+ images; and 2159 float32 slices named recon_129200_%05d.tif.
"""

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import REPO, assert_quantised, read_tiff, run_script, tiff_names
from tomotiff import synthetic

LO, HI = -0.0016974231, 0.0016586095


@pytest.fixture(scope="module")
def seed_recon(tmp_path_factory) -> Path:
    """Context 1: a Savu-like volume, layout (image_height, image_index, image_width)."""
    path = tmp_path_factory.mktemp("13429") / "13429_processed.nxs"
    synthetic.write_savu_recon(str(path), height=24, count=60, width=20, chunks=(8, 8, 8))
    return path


@pytest.fixture(scope="module")
def seed_raw(tmp_path_factory) -> Path:
    """Context 2: a GDA-like raw scan with 2159 projections plus flats and darks."""
    path = tmp_path_factory.mktemp("raw") / "23912.nxs"
    synthetic.write_gda_raw(str(path), projections=2159, flats=4, darks=4, height=6, width=8)
    return path


@pytest.fixture(scope="module")
def seed_slices(tmp_path_factory) -> Path:
    """Context 3: 2159 reconstructed float32 slices."""
    directory = tmp_path_factory.mktemp("87637")
    synthetic.write_tiff_dir(str(directory), "recon_129200_%05d.tif", count=2159, height=6, width=8)
    return directory


def test_context1_nxs2tiff_keeps_float32(seed_recon, tmp_path):
    out = tmp_path / "tiffs"
    done = run_script(
        "nxs2tiff",
        "-d",
        "/entry/final_result_tomo/data",
        "-b",
        "0",
        "-s",
        "50",
        "-i",
        "1",
        "--fp",
        seed_recon,
        f"{out}/",
    )
    assert done.returncode == 0, done.stderr
    assert tiff_names(out) == [f"image_{i:05d}.tif" for i in range(50)]
    with h5py.File(seed_recon) as file:
        expected = file["/entry/final_result_tomo/data"][:, 37, :]
    image, meta = read_tiff(out / "image_00037.tif")
    assert image.dtype == np.float32 and np.array_equal(image, expected)
    assert meta["index"] == 37 and meta["axis"] == 1 and meta["dtype_out"] == "float32"


def test_context1_example2_rank4_run_as_python_script(tmp_path):
    """`python .../nxs2tiff.py -b 0 -s 130 -d 2-AstraReconGpu-tomo/data -i 3 --fp FILE ./Tiffs`."""
    volume = np.random.default_rng(4).normal(0, 1e-3, (16, 1, 12, 130)).astype(np.float32)
    source = tmp_path / "tomo_p2_astra_recon_gpu.h5"
    with h5py.File(source, "w") as file:
        file.create_dataset("2-AstraReconGpu-tomo/data", data=volume, chunks=(16, 1, 12, 10))
    script = REPO / "src" / "tomotiff" / "nxs2tiff.py"
    done = subprocess.run(
        [
            sys.executable,
            str(script),
            "-b",
            "0",
            "-s",
            "130",
            "-d",
            "2-AstraReconGpu-tomo/data",
            "-i",
            "3",
            "--fp",
            str(source),
            "./Tiffs",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert len(tiff_names(tmp_path / "Tiffs")) == 130
    image, _ = read_tiff(tmp_path / "Tiffs" / "image_00129.tif")
    assert image.shape == (16, 12) and np.array_equal(image, volume[:, 0, :, 129])


def test_context1_nxs2tiffux_explicit_window(seed_recon, tmp_path):
    out = tmp_path / "u8"
    done = run_script(
        "nxs2tiffux",
        "-d",
        "/entry/final_result_tomo/data",
        "-b",
        "0",
        "-s",
        "50",
        "-i",
        "1",
        "-u",
        "8",
        "--lo",
        "-0.0016974231",
        "--hi",
        "0.0016586095",
        seed_recon,
        f"{out}/",
    )
    assert done.returncode == 0, done.stderr
    assert f"lo={LO!r} hi={HI!r}" in done.stdout
    with h5py.File(seed_recon) as file:
        volume = file["/entry/final_result_tomo/data"][:, :50, :]
    for index in (0, 21, 49):
        image, meta = read_tiff(out / f"image_{index:05d}.tif")
        assert image.dtype == np.uint8
        assert_quantised(image, volume[:, index, :], LO, HI, 8)
        assert (meta["lo"], meta["hi"], meta["bits"]) == (LO, HI, 8)


def test_context2_nxs2tiff_keeps_uint16(seed_raw, tmp_path):
    out = tmp_path / "projections"
    done = run_script(
        "nxs2tiff", "-d", "/entry1/instrument/pco1_hw_hdf/data", "-b", "0", "-s", "2159", seed_raw, f"{out}/"
    )
    assert done.returncode == 0, done.stderr
    names = tiff_names(out)
    assert len(names) == 2159 and names[-1] == "image_02158.tif"
    with h5py.File(seed_raw) as file:
        expected = file["/entry1/instrument/pco1_hw_hdf/data"][1234]
    image, _ = read_tiff(out / "image_01234.tif")
    assert image.dtype == np.uint16 and np.array_equal(image, expected)


def test_context2_nxs2tiffux_float_window_on_raw_data_warns(seed_raw, tmp_path):
    """The page's example applies a reconstruction's lo/hi to uint16 raw data along axis 1."""
    out = tmp_path / "u8"
    done = run_script(
        "nxs2tiffux",
        "-d",
        "/entry1/instrument/pco1_hw_hdf/data",
        "-i",
        "1",
        "-u",
        "8",
        "--lo",
        "-0.0016974231",
        "--hi",
        "0.0016586095",
        seed_raw,
        f"{out}/",
    )
    assert done.returncode == 0, done.stderr
    assert "saturates" in done.stderr and "warning" in done.stderr
    assert len(tiff_names(out)) == 6  # axis 1 has 6 rows: each image is a sinogram (images, width)
    image, _ = read_tiff(out / "image_00000.tif")
    assert image.shape == (2167, 8) and set(np.unique(image)) <= {0, 255}


def test_context3_tiff2tiffux_reference_window(seed_slices, tmp_path):
    out = tmp_path / "u8" / "87637"
    done = run_script(
        "tiff2tiffux",
        "-b",
        "0",
        "-s",
        "2159",
        "-i",
        "recon_129200_%05d.tif",
        "-o",
        "recon_129200_%05d.tif",
        "-u",
        "8",
        "--use_ref",
        "-r",
        "1080",
        "-p",
        "0.1",
        f"{seed_slices}/",
        f"{out}/",
    )
    assert done.returncode == 0, done.stderr
    reference, _ = read_tiff(seed_slices / "recon_129200_01080.tif")
    lo, hi = np.percentile(reference.astype(np.float64), [0.1, 99.9])
    assert f"lo={float(lo)!r} hi={float(hi)!r}" in done.stdout and "reference image 1080" in done.stdout
    assert len(tiff_names(out)) == 2159
    source, _ = read_tiff(seed_slices / "recon_129200_02158.tif")
    image, meta = read_tiff(out / "recon_129200_02158.tif")
    assert_quantised(image, source, float(lo), float(hi), 8)
    assert meta["input_file"] == "recon_129200_02158.tif" and meta["window"]["reference"] == 1080


def test_context3_tiff2tiffux_explicit_window(seed_slices, tmp_path):
    out = tmp_path / "u8" / "87637"
    done = run_script(
        "tiff2tiffux",
        "-b",
        "0",
        "-s",
        "2159",
        "-i",
        "recon_129200_%05d.tif",
        "-o",
        "recon_129200_%05d.tif",
        "-u",
        "8",
        "--lo",
        "-0.0016974231",
        "--hi",
        "0.0016586095",
        f"{seed_slices}/",
        f"{out}/",
    )
    assert done.returncode == 0, done.stderr
    source, _ = read_tiff(seed_slices / "recon_129200_00007.tif")
    image, _ = read_tiff(out / "recon_129200_00007.tif")
    assert_quantised(image, source, LO, HI, 8)
