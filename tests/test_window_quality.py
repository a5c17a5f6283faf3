"""Issue 16, part 1: windows that know what a reconstruction looks like (``--mask circle``,
``--mask-value``), the clipping figures of every image written, and the drift warning.

Every expected value here is computed independently of tomotiff: the field of view with numpy's
own grid, percentiles with ``np.percentile``, clipping by counting the written TIFFs' pixels.
"""

import json

import h5py
import numpy as np
import pytest
import tifffile

import tomotiff.source
from conftest import REPO, read_tiff, run_cli
from tomotiff import batch
from tomotiff.errors import TomotiffError

DATASET = "/entry/data"
HEIGHT, WIDTH = 48, 64


def inside_circle(height: int, width: int) -> np.ndarray:
    """Pixel centres within min(height, width) / 2 of the image's centre, from a meshgrid."""
    rows, columns = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    distance = np.hypot(rows - (height - 1) / 2, columns - (width - 1) / 2)
    return distance <= min(height, width) / 2


def reconstruction(images: int = 9, seed: int = 3) -> np.ndarray:
    """float32 slices: a sample inside the field of view, a bright ring and zeros outside it."""
    rng = np.random.default_rng(seed)
    volume = rng.normal(1.0, 0.2, (images, HEIGHT, WIDTH)).astype(np.float32)
    outside = ~inside_circle(HEIGHT, WIDTH)
    volume[:, outside] = 50.0  # reconstruction garbage: far brighter than the sample
    volume[:, :2, :] = 0.0  # padding rows
    return volume


def write(path, volume: np.ndarray) -> str:
    with h5py.File(path, "w") as file:
        file.create_dataset(DATASET, data=volume)
    return str(path)


def window_of(directory) -> dict:
    return json.loads((directory / "manifest.json").read_text())["window"]


def test_the_circle_mask_takes_the_percentiles_inside_the_field_of_view(tmp_path):
    volume = reconstruction()
    source = write(tmp_path / "recon.h5", volume)
    assert (
        run_cli("nxs2tiffux", "-q", "-d", DATASET, "-p", "1", "--mask", "circle", source, tmp_path / "m").returncode
        == 0
    )
    inside = volume[4][inside_circle(HEIGHT, WIDTH)].astype(np.float64)
    window = window_of(tmp_path / "m")
    assert (window["lo"], window["hi"]) == tuple(np.percentile(inside, [1, 99]))
    assert window["mask"] == {"circle": True, "values": []}
    assert run_cli("nxs2tiffux", "-q", "-d", DATASET, "-p", "1", source, tmp_path / "all").returncode == 0
    assert window_of(tmp_path / "all")["hi"] == 50.0 and window_of(tmp_path / "all")["mask"] is None
    pixels, metadata = read_tiff(tmp_path / "m" / "image_00000.tif")
    assert pixels.shape == (HEIGHT, WIDTH)  # the mask only chooses the window
    assert metadata["window"]["mask"] == {"circle": True, "values": []}


def test_the_circle_is_the_cropped_images_and_mask_values_leave_pixels_out(tmp_path):
    volume = reconstruction()
    source = write(tmp_path / "recon.h5", volume)
    crop = (2, 6, 3, 1)  # top, bottom, left, right
    done = run_cli(
        "nxs2tiffux", "-d", DATASET, "-p", "2", "-r", "3", "--crop", *crop, "--mask", "circle",
        "--mask-value", "0", "--mask-value", "nan", source, tmp_path / "c",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    cropped = volume[3][2 : HEIGHT - 6, 3 : WIDTH - 1]
    kept = cropped[inside_circle(*cropped.shape) & (cropped != 0)].astype(np.float64)
    window = window_of(tmp_path / "c")
    assert (window["lo"], window["hi"]) == tuple(np.percentile(kept, [2, 98]))
    assert window["mask"] == {"circle": True, "values": [0.0, "nan"]}
    assert "inside the field-of-view circle, leaving out 0 and nan" in done.stdout
    values_only = run_cli("nxs2tiffux", "-q", "-d", DATASET, "--mask-value", "50", source, tmp_path / "v")
    assert values_only.returncode == 0
    plain = volume[4][volume[4] != 50].astype(np.float64)
    assert (window_of(tmp_path / "v")["lo"], window_of(tmp_path / "v")["hi"]) == (plain.min(), plain.max())


@pytest.mark.parametrize("sample", [1, 2])
def test_a_masked_global_window_is_exact_over_row_tiles(tmp_path, monkeypatch, sample):
    """The global window streams tiles of a few rows (TILE_BYTES made small): the circle must
    follow each tile's rows."""
    monkeypatch.setattr(tomotiff.source, "TILE_BYTES", 4 * WIDTH * 5)  # 5 rows of one image per tile
    volume = reconstruction(images=7)
    source = write(tmp_path / "recon.h5", volume)
    argv = ["-q", "-d", DATASET, "--window", "global", "--sample", sample, "-p", "0.5", "--mask", "circle"]
    assert run_cli("nxs2tiffux", *argv, source, tmp_path / "g").returncode == 0
    inside = volume[::sample][:, inside_circle(HEIGHT, WIDTH)].astype(np.float64)
    window = window_of(tmp_path / "g")
    assert (window["lo"], window["hi"]) == tuple(np.percentile(inside, [0.5, 99.5]))
    assert window["method"] == "global" and window["mask"]["circle"] is True


def test_every_image_records_its_clipping_as_its_pixels_count_it(tmp_path):
    volume = reconstruction(images=6)
    volume[2, 10:12, 10:40] = np.nan
    source = write(tmp_path / "recon.h5", volume)
    for bits in (8, 16):
        out = tmp_path / f"u{bits}"
        assert (
            run_cli("nxs2tiffux", "-q", "-d", DATASET, "-u", bits, "--lo", 0.5, "--hi", 1.5, source, out).returncode
            == 0
        )
        manifest = json.loads((out / "manifest.json").read_text())
        fractions = {"at_0": [], "at_top": []}
        for entry in manifest["images"]:
            pixels = tifffile.imread(out / entry["file"])
            image = volume[entry["index"]]
            at_0, at_top = np.count_nonzero(pixels == 0), np.count_nonzero(pixels == 2**bits - 1)
            assert entry["clipped"] == {"at_0": at_0 / image.size, "at_top": at_top / image.size,
                                        "nan": int(np.isnan(image).sum())}  # fmt: skip
            fractions["at_0"].append(at_0 / image.size)
            fractions["at_top"].append(at_top / image.size)
        summary = manifest["clipping"]
        for side, values in fractions.items():
            assert summary[side] == {"min": min(values), "median": float(np.median(values)), "max": max(values)}
        assert summary["nan"] == {"pixels": 60, "images": 1} and summary["images"] == 6
        assert summary["of"] == "all images" and summary["drift"] == {"threshold": 0.1, "images": []}


def test_float_outputs_record_no_clipping(tmp_path):
    source = write(tmp_path / "recon.h5", reconstruction(images=3))
    assert run_cli("nxs2tiff", "-q", "-d", DATASET, "--fp", source, tmp_path / "f").returncode == 0
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    assert "clipping" not in manifest and all("clipped" not in entry for entry in manifest["images"])


def test_images_far_from_the_median_clipping_are_named_in_a_warning(tmp_path):
    volume = np.random.default_rng(1).normal(1.0, 0.1, (20, HEIGHT, WIDTH)).astype(np.float32)
    volume[[6, 7, 8, 15]] *= 1.5  # the beam brightens for a while: 1.5 is past hi for most pixels
    source = write(tmp_path / "recon.h5", volume)
    done = run_cli("nxs2tiffux", "-d", DATASET, "--lo", 0.7, "--hi", 1.3, source, tmp_path / "d")
    assert done.returncode == 0  # a warning, not an error: the images are written
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1
    assert "4 of 20 images (6..8, 15) have 10% more or fewer of their pixels at 0 or at 255" in warnings[0]
    manifest = json.loads((tmp_path / "d" / "manifest.json").read_text())
    assert manifest["clipping"]["drift"]["images"] == [6, 7, 8, 15]
    steady = run_cli("nxs2tiffux", "-d", DATASET, "--lo", 0.7, "--hi", 1.3, "-s", 6, source, tmp_path / "s")
    assert steady.returncode == 0 and "warning" not in steady.stderr
    assert "clipped pixels per image: at 0 median" in steady.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--mask-value", "zero"], "--mask-value takes a number or nan, not 'zero'"),
        (["--mask", "circle", "--lo", "0", "--hi", "1"], "with --lo and --hi both given no percentile is taken"),
        (["--mask", "square"], "invalid choice: 'square'"),
    ],
)
def test_bad_mask_options_are_one_line_and_write_nothing(tmp_path, argv, message):
    source = write(tmp_path / "recon.h5", reconstruction(images=2))
    done = run_cli("nxs2tiffux", "-d", DATASET, *argv, source, tmp_path / "out")
    assert done.returncode == 2 and message in done.stderr
    assert not (tmp_path / "out").exists()


def test_a_mask_that_keeps_no_finite_pixel_says_so(tmp_path):
    source = write(tmp_path / "recon.h5", np.zeros((3, 8, 8), np.float32))
    done = run_cli("nxs2tiffux", "-d", DATASET, "--mask-value", "0", source, tmp_path / "out")
    assert done.returncode == 2 and "has no finite pixels the mask keeps (leaving out 0)" in done.stderr


def test_the_workflow_takes_mask_and_mask_values(tmp_path):
    schema = str(REPO / "config" / "schema.yaml")
    config = {"scans": [{"id": 1, "input": "x.nxs", "mask": "circle", "mask_values": [0, float("nan"), "nan"]}]}
    scan = batch.load(config, schema)["1"]
    assert scan["mask"] == {"shape": "circle", "values": [0, "nan", "nan"]}
    with pytest.raises(TomotiffError, match="mask"):
        batch.load({"scans": [{"id": 1, "input": "x.nxs", "mask": "square"}]}, schema)
    with pytest.raises(TomotiffError, match="mask_values"):
        batch.load({"scans": [{"id": 1, "input": "x.nxs", "mask_values": ["zero"]}]}, schema)
