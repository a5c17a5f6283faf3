"""What a pixel measures (tomotiff.calibration): --pixel-size, the sizes files record (NaN and
'undefined' meaning unknown), magnification, binning, and stacks split to stay classic TIFF."""

import json

import h5py
import numpy as np
import pytest
import tifffile

from conftest import run_cli
from tomotiff import sink, synthetic
from tomotiff.calibration import parse_pixel_size, pixel_size_in_file
from tomotiff.errors import TomotiffError

GDA = "/entry1/instrument/pco1_hw_hdf/data"


@pytest.mark.parametrize(
    "text, um",
    [("1.625um", 1.625), ("0.65e-6m", 0.65), ("6.5", 6.5), ("2 mm", 2000.0), ("0.8µm", 0.8), ("650nm", 0.65)],
)
def test_pixel_sizes_are_read_with_their_units(text, um):
    assert parse_pixel_size(text).um == pytest.approx(um, rel=1e-12)


@pytest.mark.parametrize("text", ["-1um", "0", "1.6 furlongs", "um", "nan"])
def test_bad_pixel_sizes_name_the_form_expected(text):
    with pytest.raises(TomotiffError, match="--pixel-size"):
        parse_pixel_size(text)


def raw_scan_with_size(path, value, units, magnification=None) -> None:
    synthetic.write_gda_raw(str(path), projections=6, flats=1, darks=1, height=8, width=10)
    with h5py.File(path, "r+") as file:
        detector = file["entry1/instrument/pco1_hw_hdf"]
        for axis in "xy":
            detector[f"{axis}_pixel_size"] = value
            if units is not None:
                detector[f"{axis}_pixel_size"].attrs["units"] = units
        if magnification is not None:
            file["entry1/instrument/magnification"] = magnification


def test_the_files_own_pixel_size_is_used_in_the_sample_plane(tmp_path):
    raw_scan_with_size(tmp_path / "raw.nxs", 6.5e-6, "m", magnification=4.0)
    with h5py.File(tmp_path / "raw.nxs") as file:
        size, why = pixel_size_in_file(file, GDA)
    assert why is None and size.um == pytest.approx(1.625)
    assert (
        size.origin
        == "/entry1/instrument/pco1_hw_hdf/x_pixel_size / /entry1/instrument/magnification (the sample plane)"
    )
    done = run_cli("nxs2tiff", "-q", "-d", GDA, "--bin", "2", tmp_path / "raw.nxs", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["pixel_size_um"] == pytest.approx(3.25) and "x2 (--bin 2)" in manifest["pixel_size_from"]


@pytest.mark.parametrize(
    "value, units", [(np.nan, "undefined"), (np.nan, "m"), (0.0, "m"), (-1.0, "um"), (6.5, "undefined")]
)
def test_unknown_sizes_mean_no_calibration_and_one_line_saying_so(tmp_path, value, units):
    raw_scan_with_size(tmp_path / "raw.nxs", value, units)
    done = run_cli("nxs2tiff", "-d", GDA, tmp_path / "raw.nxs", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    said = [line for line in done.stderr.splitlines() if "pixel_size" in line]
    assert len(said) == 1 and "the images are not calibrated (give --pixel-size)" in said[0]
    assert "pixel_size_um" not in json.loads((tmp_path / "out/manifest.json").read_text())
    with tifffile.TiffFile(tmp_path / "out/image_00000.tif") as tif:
        assert "ResolutionUnit" not in tif.pages[0].tags or tif.pages[0].tags["ResolutionUnit"].value == 1
    given = run_cli("nxs2tiff", "-q", "-d", GDA, "--pixel-size", "3um", tmp_path / "raw.nxs", tmp_path / "given")
    assert given.returncode == 0 and given.stderr == ""  # the user's size wins, nothing to say


def test_a_stack_past_the_classic_tiff_limit_is_split_into_whole_page_files(tmp_path, monkeypatch):
    monkeypatch.setattr(sink, "CLASSIC_TIFF_BYTES", 3 * 24 * 32)  # three 24 x 32 uint8 pages a file
    synthetic.write_gda_raw(str(tmp_path / "raw.nxs"), projections=4, flats=2, darks=2, height=24, width=32)
    done = run_cli(
        "nxs2tiffux",
        "-q",
        "-d",
        GDA,
        "--stack",
        "--imagej",
        "--lo",
        "0",
        "--hi",
        "40000",
        tmp_path / "raw.nxs",
        tmp_path / "out",
    )
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "out").glob("*.tif"))
    assert names == ["image_00000.tif", "image_00003.tif", "image_00006.tif"]
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert [(e["index"], e["file"], e["page"]) for e in manifest["images"]][2:5] == [
        (2, "image_00000.tif", 2),
        (3, "image_00003.tif", 0),
        (4, "image_00003.tif", 1),
    ]
    with tifffile.TiffFile(tmp_path / "out/image_00003.tif") as tif:
        assert len(tif.pages) == 3 and not tif.is_bigtiff
        assert tif.imagej_metadata["Labels"] == ["image 3 (projection)", "image 4 (projection)", "image 5 (projection)"]
        assert json.loads(tif.imagej_metadata["Info"])["indices"] == [3, 4, 5]
    assert run_cli("tomotiff", "verify", tmp_path / "out").returncode == 0
