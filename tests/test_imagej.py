"""Every output kind opened in the real ImageJ (Debian's ImageJ 1.53t under Xvfb; `.ci/run` installs
both): dimensions, slices, bit depth, pixel values equal to tifffile's, a finite display range, the
pixel size, the value calibration, slice labels and the provenance in Show Info. And libtiff's
`tiffinfo` on the same files. Skips, saying why, where ImageJ, Java or Xvfb is missing."""

import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tifffile

from conftest import run_cli
from tomotiff import dequantise, synthetic

pytestmark = pytest.mark.imagej

IJ_JAR = Path("/usr/share/java/ij.jar")
PROBE = Path(__file__).parent / "imagej" / "probe.ijm"
SAVU = "/entry/final_result_tomo/data"


@pytest.fixture(scope="session")
def imagej(tmp_path_factory):
    """A function running ImageJ on one file (one JVM per file, with a timeout: a file ImageJ
    cannot open shows a dialog and would wait forever), on an Xvfb display this fixture starts."""
    missing = [
        name
        for name, found in (
            ("ImageJ (Debian package imagej)", IJ_JAR.exists()),
            ("java", shutil.which("java")),
            ("Xvfb (package xvfb)", shutil.which("Xvfb")),
        )
        if not found
    ]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed; .ci/run installs them")
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", "1", "-nolisten", "tcp"], stdout=subprocess.PIPE, text=True)
    display = f":{xvfb.stdout.readline().strip()}"

    def probe(path: Path) -> dict[str, str]:
        done = subprocess.run(
            ["java", "-Dsun.stdout.encoding=UTF-8", "-jar", str(IJ_JAR), "-batch", str(PROBE), str(path)],
            capture_output=True,
            encoding="utf-8",
            timeout=60,
            env={"DISPLAY": display, "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        )
        facts = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        assert "dims" in facts, f"ImageJ could not open {path}: {done.stdout}{done.stderr}"
        return facts

    yield probe
    xvfb.terminate()
    xvfb.wait(timeout=10)


@pytest.fixture(scope="module")
def ij_recon(tmp_path_factory) -> Path:
    """A float32 reconstruction with NaN and +-Inf, as reconstructions sometimes hold."""
    path = tmp_path_factory.mktemp("ij") / "recon.nxs"
    synthetic.write_savu_recon(str(path), height=20, count=6, width=24)
    import h5py

    with h5py.File(path, "r+") as file:
        data = file[SAVU]
        data[0, 0, 0], data[1, 1, 1], data[2, 2, 2] = np.inf, -np.inf, np.nan
    return path


KINDS = {  # name: (command, options)
    "u8": ("nxs2tiffux", ["-u", "8", "-p", "1"]),
    "u16": ("nxs2tiffux", ["-u", "16", "--lo", "-0.001", "--hi", "0.002"]),
    "f32": ("nxs2tiff", ["--fp"]),
}


def written(tmp_path: Path, ij_recon: Path, kind: str, *choices: str) -> tuple[Path, dict]:
    command, options = KINDS[kind]
    out = tmp_path / "out"
    done = run_cli(
        command, "-q", "-d", SAVU, "-i", "1", "-s", "4", "--pixel-size", "1.625um", *options, *choices, ij_recon, out
    )
    assert done.returncode == 0, done.stderr
    return out / "image_00000.tif", json.loads((out / "manifest.json").read_text())


def number(text: str) -> float:
    return {"Infinity": math.inf, "-Infinity": -math.inf, "NaN": math.nan}.get(text, None) or float(text)


@pytest.mark.parametrize("stack", [False, True], ids=["files", "stack"])
@pytest.mark.parametrize("imagej_metadata", [False, True], ids=["plain", "imagej"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_every_output_kind_opens_right_in_imagej(imagej, ij_recon, tmp_path, kind, imagej_metadata, stack):
    choices = [*(["--imagej"] if imagej_metadata else []), *(["--stack"] if stack else [])]
    path, manifest = written(tmp_path, ij_recon, kind, *choices)
    facts = imagej(path)
    with tifffile.TiffFile(path) as tif:
        pixels = tif.asarray()
    pixels = pixels if stack else pixels[np.newaxis]
    slices, height, width = pixels.shape
    assert facts["dims"] == f"{width},{height},1,{slices},1" and slices == (4 if stack else 1)
    assert facts["bitdepth"] == {"u8": "8", "u16": "16", "f32": "32"}[kind]
    for s in range(slices):
        for x, y in ((0, 0), (width - 1, height - 1), (width // 2, height // 2)):
            value, calibrated = facts[f"pixel{s + 1},{x},{y}"].split(",")
            expected = float(pixels[s, y, x])
            assert number(value) == expected or math.isclose(number(value), expected, rel_tol=1e-8), (s, x, y)
            if imagej_metadata and kind != "f32":  # ImageJ measures the original values
                assert math.isclose(
                    number(calibrated),
                    float(dequantise(expected, manifest["lo"], manifest["hi"], manifest["bits"])),
                    rel_tol=1e-9,
                )
    low, high = map(number, facts["display"].split(","))
    if imagej_metadata or kind != "f32":  # plain float files: ImageJ computes its own range (see README)
        assert math.isfinite(low) and math.isfinite(high) and low < high
    unit, pixel_width, pixel_height = facts["pixelsize"].split(",")
    assert unit in ("µm", "um", "micron") and number(pixel_width) == number(pixel_height) == 1.625
    if imagej_metadata and stack:
        assert [facts[f"label{s + 1}"] for s in range(slices)] == [f"image {i}" for i in range(4)]
    assert facts["info_has_provenance"] == "1"


def test_ome_tiff_opens_in_imagej_with_its_pixel_size(imagej, ij_recon, tmp_path):
    path, _ = written(tmp_path, ij_recon, "u16", "--stack", "--ome")
    facts = imagej(path)
    assert facts["dims"].endswith(",1,4,1") and facts["bitdepth"] == "16"
    assert facts["pixelsize"].split(",")[1:] == ["1.625000000E0", "1.625000000E0"]


@pytest.mark.parametrize("compression", ["zlib", "lzw", "packbits"])
def test_imagej_reads_every_compression_it_is_offered(imagej, ij_recon, tmp_path, compression):
    path, _ = written(tmp_path, ij_recon, "u16", "--imagej", "--stack", "--compression", compression)
    facts = imagej(path)
    assert facts["dims"].endswith(",1,4,1") and facts["bitdepth"] == "16"
    assert number(facts["pixel1,0,0"].split(",")[0]) == float(tifffile.imread(path)[0, 0, 0])


def test_imagej_and_zstd_are_refused_naming_the_readable_choices(ij_recon, tmp_path):
    done = run_cli("nxs2tiffux", "--imagej", "--compression", "zstd", "-d", SAVU, "-i", "1", ij_recon, tmp_path / "o")
    assert done.returncode == 2 and "ImageJ cannot open zstd-compressed TIFFs" in done.stderr
    assert "--compression none, zlib, lzw, packbits" in done.stderr and not (tmp_path / "o").exists()


@pytest.mark.parametrize("imagej_metadata", [False, True], ids=["plain", "imagej"])
def test_tiffinfo_reads_without_warnings_but_imagejs_own_tags(ij_recon, tmp_path, imagej_metadata):
    if shutil.which("tiffinfo") is None:
        pytest.skip("tiffinfo not installed (Debian package libtiff-tools; .ci/run installs it)")
    path, _ = written(tmp_path, ij_recon, "u8", "--stack", *(["--imagej"] if imagej_metadata else []))
    done = subprocess.run(["tiffinfo", str(path)], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.count("TIFF Directory") == 4
    warnings = [line for line in done.stderr.splitlines() if "Warning" in line]
    # ImageJ keeps slice labels and Info in its own two tags, 50838 and 50839, which libtiff does not know
    assert all("50838" in line or "50839" in line for line in warnings) if imagej_metadata else not warnings


def test_the_window_and_pixel_size_are_in_the_metadata(ij_recon, tmp_path):
    path, manifest = written(tmp_path, ij_recon, "u8", "--bin", "2")
    assert manifest["pixel_size_um"] == 3.25 and "--pixel-size 1.625um, x2 (--bin 2)" in manifest["pixel_size_from"]
    with tifffile.TiffFile(path) as tif:
        assert json.loads(tif.pages[0].description)["pixel_size_um"] == 3.25
        assert tif.pages[0].tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
        numerator, denominator = tif.pages[0].tags["XResolution"].value
        assert math.isclose(numerator / denominator, 1e4 / 3.25)
