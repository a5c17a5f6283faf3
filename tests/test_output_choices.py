"""Beyond the beamline page: raw-scan keys, global windows, compression, stacks, ImageJ, crop, bin."""

import json
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import assert_quantised, read_tiff, run_cli, tiff_names
from tomotiff import synthetic


@pytest.fixture(scope="module")
def choices_recon(tmp_path_factory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("recon") / "recon.nxs"
    synthetic.write_savu_recon(str(path), height=40, count=24, width=36, chunks=(8, 8, 8))
    with h5py.File(path) as file:
        return path, file["/entry/final_result_tomo/data"][()]


@pytest.fixture(scope="module")
def choices_raw(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    path = tmp_path_factory.mktemp("raw") / "raw.nxs"
    synthetic.write_gda_raw(str(path), projections=30, flats=6, darks=6, height=12, width=16)
    with h5py.File(path) as file:
        return (
            path,
            file["/entry1/instrument/pco1_hw_hdf/data"][()],
            file["/entry1/tomo_entry/instrument/detector/image_key"][()],
        )


RAW = "/entry1/instrument/pco1_hw_hdf/data"


def test_keys_select_images_and_the_window_comes_from_projections(choices_raw, tmp_path):
    path, data, keys = choices_raw
    done = run_cli("nxs2tiffux", "-d", RAW, "--keys", "flats", path, tmp_path)
    assert done.returncode == 0, done.stderr
    flats = np.flatnonzero(keys == 1)
    assert tiff_names(tmp_path) == [f"image_{i:05d}.tif" for i in flats]
    projections = np.flatnonzero(keys == 0)
    middle = int(projections[len(projections) // 2])
    lo, hi = float(data[middle].min()), float(data[middle].max())
    assert f"from reference image {middle}," in done.stdout
    image, meta = read_tiff(tmp_path / f"image_{flats[-1]:05d}.tif")
    assert_quantised(image, data[flats[-1]], lo, hi, 8)
    assert meta["image_key"] == 1.0 and meta["image_key_path"] == "/entry1/tomo_entry/instrument/detector/image_key"


def test_split_keys_writes_one_directory_per_kind(choices_raw, tmp_path):
    path, data, keys = choices_raw
    done = run_cli("nxs2tiff", "-q", "-d", RAW, "--split-keys", "-b", "2", "-s", "40", path, tmp_path)
    assert done.returncode == 0, done.stderr
    for name, code in (("projections", 0), ("flats", 1), ("darks", 2)):
        expected = [f"image_{i:05d}.tif" for i in np.flatnonzero(keys == code) if 2 <= i < 40]
        assert tiff_names(tmp_path / name) == expected and (tmp_path / name / "manifest.json").exists()
    image, _ = read_tiff(tmp_path / "darks" / "image_00002.tif")
    assert np.array_equal(image, data[2])


def test_float_keys_with_nan_fill_values(tmp_path):
    data = np.arange(6 * 4 * 5, dtype=np.uint16).reshape(6, 4, 5)
    with h5py.File(tmp_path / "k.h5", "w") as file:
        file["data"] = data
        file["meta/image_key"] = np.array([2.0, 1.0, 0.0, 0.0, np.nan, 1.0])
    done = run_cli(
        "nxs2tiff",
        "-q",
        "-d",
        "data",
        "--keys",
        "projections",
        "--image-key-path",
        "/meta/image_key",
        tmp_path / "k.h5",
        tmp_path / "out",
    )
    assert done.returncode == 0, done.stderr
    assert tiff_names(tmp_path / "out") == ["image_00002.tif", "image_00003.tif"]


def test_keys_without_image_key_is_a_clear_error(choices_recon, tmp_path):
    done = run_cli("nxs2tiffux", "-i", "1", "--keys", "darks", choices_recon[0], tmp_path / "out")
    assert done.returncode == 2 and "no image_key dataset" in done.stderr and "--image-key-path" in done.stderr
    assert not (tmp_path / "out").exists()


def test_real_k11_flats_and_darks(real, tmp_path):
    source = real / "k11-diad-18014" / "k11-18014.nxs"
    done = run_cli(
        "nxs2tiffux", "-q", "-d", "/entry/imaging/data", "--split-keys", "-s", "150", "-u", "16", source, tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert [len(tiff_names(tmp_path / n)) for n in ("flats", "darks", "projections")] == [50, 50, 50]
    manifest = json.loads((tmp_path / "flats" / "manifest.json").read_text())
    assert manifest["window"]["reference"] == 125  # the middle projection of 100..149
    assert manifest["image_key_path"] == "/entry/instrument/imaging/image_key"


def test_global_window_uses_every_selected_image(choices_recon, tmp_path):
    (
        path,
        volume,
    ) = choices_recon[0], choices_recon[1]
    done = run_cli("nxs2tiffux", "-i", "1", "-b", "4", "-s", "20", "--window", "global", "-p", "0.5", path, tmp_path)
    assert done.returncode == 0, done.stderr
    values = volume[:, 4:20, :].astype(np.float64)
    lo, hi = np.percentile(values, [0.5, 99.5])
    meta = json.loads((tmp_path / "manifest.json").read_text())
    top = 255
    assert abs(meta["lo"] - lo) * top / (hi - lo) < 0.01 and abs(meta["hi"] - hi) * top / (hi - lo) < 0.01
    assert meta["window"]["method"] == "global" and "from all selected images" in done.stdout
    sampled = run_cli("nxs2tiffux", "-q", "-i", "1", "--window", "global", "--sample", "5", path, tmp_path / "s")
    assert sampled.returncode == 0, sampled.stderr
    meta = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert (meta["lo"], meta["hi"]) == (float(volume[:, ::5].min()), float(volume[:, ::5].max()))


@pytest.mark.parametrize("compression", ["zstd", "zlib", "lzw", "packbits"])
def test_compressed_output_reads_back_identically(choices_recon, tmp_path, compression):
    path = choices_recon[0]
    assert run_cli("nxs2tiffux", "-q", "-i", "1", "-s", "2", "-u", "16", path, tmp_path / "plain").returncode == 0
    done = run_cli(
        "nxs2tiffux", "-q", "-i", "1", "-s", "2", "-u", "16", "--compression", compression, path, tmp_path / "c"
    )
    assert done.returncode == 0, done.stderr
    plain, packed = tmp_path / "plain" / "image_00001.tif", tmp_path / "c" / "image_00001.tif"
    assert np.array_equal(tifffile.imread(packed), tifffile.imread(plain))
    with tifffile.TiffFile(packed) as tif:
        expected = {"zstd": "ZSTD", "zlib": "ADOBE_DEFLATE", "lzw": "LZW", "packbits": "PACKBITS"}[compression]
        assert tif.pages[0].compression.name == expected
    if compression != "zstd":
        with Image.open(packed) as pil:
            assert np.array_equal(np.asarray(pil), tifffile.imread(plain))
    if shutil.which("tiffinfo"):
        assert subprocess.run(["tiffinfo", str(packed)], capture_output=True).returncode == 0


def test_stack_is_one_classic_tiff_equal_to_the_single_files(choices_recon, tmp_path):
    path = choices_recon[0]
    assert (
        run_cli(
            "nxs2tiffux",
            "-q",
            "-i",
            "1",
            "-b",
            "3",
            "-s",
            "17",
            "-j",
            "3",
            "--lo",
            "0",
            "--hi",
            "2e-3",
            path,
            tmp_path / "single",
        ).returncode
        == 0
    )
    done = run_cli(
        "nxs2tiffux",
        "-q",
        "-i",
        "1",
        "-b",
        "3",
        "-s",
        "17",
        "-j",
        "3",
        "--lo",
        "0",
        "--hi",
        "2e-3",
        "--stack",
        path,
        tmp_path / "stack",
    )
    assert done.returncode == 0, done.stderr
    assert tiff_names(tmp_path / "stack") == ["image_00003.tif"]
    with tifffile.TiffFile(tmp_path / "stack" / "image_00003.tif") as tif:
        assert not tif.is_bigtiff and len(tif.pages) == 14  # classic TIFF: ImageJ 1.x reads no BigTIFF
        stack = tif.asarray()
        assert json.loads(tif.pages[0].description)["indices"] == list(range(3, 17))
    for page, index in enumerate(range(3, 17)):
        assert np.array_equal(stack[page], tifffile.imread(tmp_path / "single" / f"image_{index:05d}.tif"))
    manifest = json.loads((tmp_path / "stack" / "manifest.json").read_text())
    assert [(e["index"], e["page"], e["file"]) for e in manifest["images"]][:2] == [
        (3, 0, "image_00003.tif"),
        (4, 1, "image_00003.tif"),
    ]
    assert run_cli("tomotiff", "verify", tmp_path / "stack").returncode == 0
    assert not list((tmp_path / "stack").glob(".*"))


def test_imagej_stack_has_dimensions_and_display_range(choices_recon, tmp_path):
    done = run_cli("nxs2tiffux", "-q", "-i", "1", "-u", "16", "--stack", "--imagej", choices_recon[0], tmp_path)
    assert done.returncode == 0, done.stderr
    with tifffile.TiffFile(tmp_path / "image_00000.tif") as tif:
        assert tif.is_imagej and len(tif.pages) == 24
        assert tif.imagej_metadata["images"] == 24 and tif.imagej_metadata["slices"] == 24
        assert (tif.imagej_metadata["min"], tif.imagej_metadata["max"]) == (0, 65535)
        description = tif.pages[0].description
        assert "images=24" in description and "min=0" in description and "max=65535" in description
        ours = json.loads(tif.imagej_metadata["Info"])  # ImageJ's Show Info shows it
        assert ours["bits"] == 16 and ours["window"]["method"] == "reference"


def test_imagej_inputs_are_read(tmp_path):
    image = np.random.default_rng(7).normal(0, 1, (10, 12)).astype(np.float32)
    tifffile.imwrite(tmp_path / "ij_0.tif", image, imagej=True)
    tifffile.imwrite(tmp_path / "ij_1.tif", image + 1, imagej=True)
    done = run_cli(
        "tiff2tiffux", "-q", "-i", "ij_%d.tif", "-o", "u_%d.tif", "--lo", "-3", "--hi", "4", tmp_path, tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert_quantised(tifffile.imread(tmp_path / "u_1.tif"), image + 1, -3, 4, 8)


def test_crop_and_bin(choices_recon, tmp_path):
    path, volume = choices_recon
    done = run_cli("nxs2tiff", "-q", "--fp", "-i", "1", "--crop", "3", "5", "2", "6", path, tmp_path / "crop")
    assert done.returncode == 0, done.stderr
    assert np.array_equal(tifffile.imread(tmp_path / "crop" / "image_00009.tif"), volume[3:35, 9, 2:30])
    done = run_cli(
        "nxs2tiffux",
        "-q",
        "-i",
        "1",
        "--crop",
        "3",
        "5",
        "2",
        "6",
        "--bin",
        "4",
        "--lo",
        "0",
        "--hi",
        "2e-3",
        path,
        tmp_path / "bin",
    )
    assert done.returncode == 0, done.stderr
    cropped = volume[3:35, 9, 2:30].astype(np.float64)
    binned = cropped[:32, :28].reshape(8, 4, 7, 4).mean(axis=(1, 3))
    image, meta = read_tiff(tmp_path / "bin" / "image_00009.tif")
    assert image.shape == (8, 7) and meta["bin"] == 4 and meta["crop"] == [3, 5, 2, 6]
    assert np.max(np.abs(image.astype(np.int64) - np.round(np.clip(binned, 0, 2e-3) / 2e-3 * 255))) <= 1


def test_crop_that_leaves_nothing_is_refused(choices_recon, tmp_path):
    done = run_cli("nxs2tiffux", "-i", "1", "--crop", "20", "20", "0", "0", choices_recon[0], tmp_path / "out")
    assert done.returncode == 2 and "leaves nothing" in done.stderr and not (tmp_path / "out").exists()


def test_ome_tiff_holds_valid_ome_xml_with_the_physical_size(choices_recon, tmp_path):
    ome_types = pytest.importorskip("ome_types", reason="ome-types is a test dependency: pip install -e '.[test]'")
    done = run_cli(
        "nxs2tiffux",
        "-q",
        "-i",
        "1",
        "-s",
        "5",
        "--stack",
        "--ome",
        "--pixel-size",
        "0.65e-6m",
        "-o",
        "r_%03d.ome.tif",
        choices_recon[0],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    ome = ome_types.from_tiff(tmp_path / "r_000.ome.tif")  # parses and validates against the OME schema
    pixels = ome.images[0].pixels
    assert (pixels.size_x, pixels.size_y, pixels.size_z) == tuple(choices_recon[1].shape[i] for i in (2, 0)) + (5,)
    assert pixels.physical_size_x == pixels.physical_size_y == pixels.physical_size_z == pytest.approx(0.65)
    assert pixels.physical_size_x_unit.value == "µm"
    assert json.loads(ome.images[0].description)["indices"] == [0, 1, 2, 3, 4]
    assert (
        run_cli(
            "nxs2tiffux",
            "-q",
            "-i",
            "1",
            "-s",
            "5",
            "--stack",
            "--ome",
            "--pixel-size",
            "0.65e-6m",
            "-o",
            "r_%03d.ome.tif",
            choices_recon[0],
            tmp_path / "again",
        ).returncode
        == 0
    )
    assert (tmp_path / "again/r_000.ome.tif").read_bytes() == (tmp_path / "r_000.ome.tif").read_bytes()
    refused = run_cli("nxs2tiffux", "--ome", "--imagej", "-i", "1", choices_recon[0], tmp_path / "both")
    assert refused.returncode == 2 and "--ome and --imagej" in refused.stderr


@pytest.mark.parametrize("layout", ["imagej", "tifffile", "bigtiff", "imagej_hyperstack"])
def test_tiff2tiffux_reads_a_stack_page_by_page(tmp_path, layout):
    volume = np.random.default_rng(3).normal(0, 1, (9, 10, 12)).astype(np.float32)
    path = tmp_path / "stack.tif"
    if layout == "imagej":
        tifffile.imwrite(path, volume, imagej=True, metadata={"axes": "ZYX"})
    elif layout == "imagej_hyperstack":  # one channel and one frame: axes TZCYX in ImageJ's terms
        tifffile.imwrite(path, volume[np.newaxis, :, np.newaxis], imagej=True, metadata={"axes": "TZCYX"})
    else:
        tifffile.imwrite(path, volume, photometric="minisblack", bigtiff=layout == "bigtiff")
    done = run_cli("tiff2tiffux", "-q", "-b", "2", "-s", "7", "-r", "4", "-p", "1", "-u", "16", path, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["window"]["reference"] == 4 and manifest["input_pages"] == 9
    assert [(e["index"], e["input_page"]) for e in manifest["images"]] == [(i, i) for i in range(2, 7)]
    for index in range(2, 7):
        assert_quantised(
            tifffile.imread(tmp_path / "out" / f"image_{index:05d}.tif"),
            volume[index],
            manifest["lo"],
            manifest["hi"],
            16,
        )
    stacked = run_cli("tiff2tiffux", "-q", "-s", "3", "--lo", "-1", "--hi", "1", "--stack", path, tmp_path / "st")
    assert stacked.returncode == 0 and len(tifffile.TiffFile(tmp_path / "st/image_00000.tif").pages) == 3


def test_a_stack_of_several_channels_is_refused_naming_its_axes(tmp_path):
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, np.zeros((3, 2, 8, 9), np.uint8), imagej=True, metadata={"axes": "ZCYX"})
    done = run_cli("tiff2tiffux", path, tmp_path / "out")
    assert done.returncode == 2 and "single-channel" in done.stderr and "ZCYX" in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("window", [["-p", "1"], ["--window", "global", "-p", "0.5", "--mask", "circle"]])
def test_two_bit_depths_from_one_read_are_the_two_runs(tmp_path, choices_recon, window):
    """-u 8,16 writes OUTPUT/u8 and OUTPUT/u16 as -u 8 and -u 16 write them, choosing the window
    once (a global window streams the volume once for both)."""
    path, _ = choices_recon
    argv = ["-d", "/entry/final_result_tomo/data", "-i", "1", *window, path]
    both = run_cli("nxs2tiffux", "-u", "8,16", *argv, tmp_path / "both")
    assert both.returncode == 0, both.stderr
    assert sum(line.startswith("window:") for line in both.stdout.splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == ["u16", "u8"]
    for bits in (8, 16):
        assert run_cli("nxs2tiffux", "-q", "-u", bits, *argv, tmp_path / f"alone{bits}").returncode == 0
        ours = json.loads((tmp_path / f"both/u{bits}/manifest.json").read_text())
        alone = json.loads((tmp_path / f"alone{bits}/manifest.json").read_text())
        assert ours == alone and ours["bits"] == bits


@pytest.mark.parametrize("depths", ["8,32", "12", "8,", "eight"])
def test_other_bit_depths_are_refused_in_one_line(tmp_path, choices_recon, depths):
    done = run_cli("nxs2tiffux", "-u", depths, choices_recon[0], tmp_path / "out")
    assert done.returncode == 2 and "takes 8, 16 or 8,16" in done.stderr and not (tmp_path / "out").exists()
