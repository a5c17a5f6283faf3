"""The commands' messages, in-process (``*_main(argv)``): each says what is wrong and names the fix,
in one line with exit code 2; and the warnings a user needs, without false alarms."""

import json

import h5py
import numpy as np
import pytest

from tomotiff import synthetic
from tomotiff.cli import nxs2tiff_main, nxs2tiffux_main, tiff2tiffux_main, tomotiff_main

GDA = "/entry1/instrument/pco1_hw_hdf/data"


@pytest.fixture(scope="module")
def gda_scan(tmp_path_factory) -> str:
    """A raw scan whose range starts with darks and flats (2 darks, 2 flats, 20 projections, ...)."""
    path = tmp_path_factory.mktemp("gda") / "raw.nxs"
    synthetic.write_gda_raw(str(path), projections=20, flats=4, darks=4, height=12, width=10)
    return str(path)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_long_option_with_one_dash_is_an_error_naming_it(gda_scan, tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        nxs2tiffux_main(["-lo", "0", "-hi", "1", "-d", GDA, gda_scan, str(tmp_path / "out")])
    assert exited.value.code == 2
    assert "unknown option -lo: long options take two dashes, --lo" in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_keys_with_split_keys_is_refused_as_the_workflow_refuses_it(gda_scan, tmp_path, capsys):
    assert nxs2tiffux_main(["--keys", "darks", "--split-keys", "-d", GDA, gda_scan, str(tmp_path / "out")]) == 2
    assert (
        "--split-keys writes every kind of image, each into its own directory; leave out --keys darks"
        in one_error_line(capsys)
    )


def test_an_input_pattern_without_a_field_blames_the_option_typed(tmp_path, capsys):
    synthetic.write_tiff_dir(str(tmp_path / "in"), count=3)
    assert tiff2tiffux_main(["-i", "recon.tif", str(tmp_path / "in"), str(tmp_path / "out")]) == 2
    assert "-i/--input-pattern 'recon.tif' must hold exactly one integer field" in one_error_line(capsys)


def test_a_single_tiff_file_given_as_input_is_read_as_a_one_page_stack(tmp_path):
    (path,) = synthetic.write_tiff_dir(str(tmp_path), count=1)
    assert tiff2tiffux_main(["-q", path, str(tmp_path / "out")]) == 0
    entries = json.loads((tmp_path / "out/manifest.json").read_text())["images"]
    assert [(entry["index"], entry["input_page"]) for entry in entries] == [(0, 0)]


def test_an_output_that_would_overwrite_the_input_stack_is_refused(tmp_path, capsys):
    (path,) = synthetic.write_tiff_dir(str(tmp_path), "image_%05d.tif", count=1)
    before = open(path, "rb").read()
    assert tiff2tiffux_main([path, str(tmp_path)]) == 2
    assert "would overwrite the input stack" in one_error_line(capsys) and open(path, "rb").read() == before


def test_hidden_output_names_are_refused(gda_scan, tmp_path, capsys):
    assert nxs2tiff_main(["-d", GDA, "-o", ".hidden_%05d.tif", gda_scan, str(tmp_path / "out")]) == 2
    assert "no leading '.'" in one_error_line(capsys)


def test_a_gap_in_the_numbering_is_reported_with_how_to_go_on(tmp_path, capsys):
    synthetic.write_tiff_dir(str(tmp_path / "in"), count=5)
    synthetic.write_tiff_dir(str(tmp_path / "in"), count=3, start=9)
    assert tiff2tiffux_main(["-i", "recon_%05d.tif", str(tmp_path / "in"), str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "stops at 4 (no recon_00005.tif), but 3 files lie beyond the gap, from recon_00009.tif" in err
    assert "-b 9" in err
    assert len(json.loads((tmp_path / "out/manifest.json").read_text())["images"]) == 5


def test_counts_read_as_english(gda_scan, tmp_path, capsys):
    assert nxs2tiff_main(["-d", GDA, "-s", "1", "-j", "1", gda_scan, str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert ": 1 image, 0..0 ->" in out and "1 worker; read: " in out and "wrote 1 image and manifest.json" in out


def test_image_keys_are_recorded_in_the_datasets_own_type(gda_scan, tmp_path):
    assert nxs2tiff_main(["-q", "-d", GDA, "-s", "6", gda_scan, str(tmp_path / "out")]) == 0
    entries = json.loads((tmp_path / "out/manifest.json").read_text())["images"]
    assert [entry["image_key"] for entry in entries] == synthetic.raw_keys(20, 4, 4)[:6].tolist()
    assert all(type(entry["image_key"]) is int for entry in entries)


def test_no_false_saturation_warning_when_the_range_starts_with_darks(gda_scan, tmp_path, capsys):
    """The window comes from the projections; the check looks at one of them, not at image 0 (a dark)."""
    assert nxs2tiffux_main(["-d", GDA, "-p", "1", gda_scan, str(tmp_path / "ref")]) == 0
    assert nxs2tiffux_main(["-d", GDA, "--lo", "0", "--hi", "40000", gda_scan, str(tmp_path / "lohi")]) == 0
    assert nxs2tiffux_main(["-d", GDA, "--window", "global", gda_scan, str(tmp_path / "global")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_a_window_stretched_by_an_outlier_is_warned_about(tmp_path, capsys):
    volume = np.random.default_rng(0).normal(1, 0.1, (5, 64, 64)).astype(np.float32)
    volume[2, 3, 3] = 3.97e14
    with h5py.File(tmp_path / "v.h5", "w") as file:
        file["data"] = volume
    assert nxs2tiffux_main(["-d", "data", str(tmp_path / "v.h5"), str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "puts 100.00% of image 2's pixels on grey levels 0 and 255 of 0..255" in err and "try -p 0.1" in err
    assert nxs2tiffux_main(["-d", "data", "-p", "0.1", str(tmp_path / "v.h5"), str(tmp_path / "out2")]) == 0
    assert "warning" not in capsys.readouterr().err


def test_help_describes_every_argument(capsys):
    with pytest.raises(SystemExit):
        tomotiff_main(["verify", "-h"])
    assert "holding manifest.json" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exited:
        synthetic.main(["-h"])
    assert exited.value.code == 0 and "DIR" in capsys.readouterr().out


def test_the_real_k11_scan_starting_with_flats_and_darks_warns_nothing(real, tmp_path, capsys):
    path = real / "k11-diad-18014" / "k11-18014.nxs"
    assert (
        nxs2tiffux_main(
            ["-d", "/entry/imaging/data", "--use_ref", "-p", "0.1", "-s", "120", str(path), str(tmp_path / "out")]
        )
        == 0
    )
    assert "warning" not in capsys.readouterr().err
