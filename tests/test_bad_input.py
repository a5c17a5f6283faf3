"""Every bad input: one line on stderr naming the fix, exit code 2, no traceback, nothing written."""

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from conftest import BIN, Run, run_cli
from tomotiff import synthetic


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad")
    synthetic.write_savu_recon(str(root / "recon.nxs"), height=8, count=10, width=6)
    with h5py.File(root / "odd.h5", "w") as file:
        file["line"] = np.arange(10.0)
        file["wide"] = np.zeros((3, 2, 4, 5), np.float32)
        file["constant"] = np.ones((4, 5, 6), np.float32)
        file["text"] = np.array([b"a", b"b"])
    (root / "not.h5").write_text("plain text, not HDF5\n")
    synthetic.write_tiff_dir(str(root / "tiffs"), "s_%03d.tif", count=5, height=4, width=5)
    (root / "multi").mkdir()
    tifffile.imwrite(root / "multi" / "m_000.tif", np.zeros((3, 4, 5), np.float32), photometric="minisblack")
    return root


def assert_clean_failure(done, *fragments: str, out: Path | None = None) -> None:
    assert done.returncode == 2, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    if out is not None:
        assert not out.exists(), "nothing may be written on bad input"


NXS = [
    (["missing.nxs"], ["input file not found"]),
    (["not.h5"], ["is not an HDF5 file"]),
    (["-d", "/entry/nope", "recon.nxs"], ["'/entry/nope' not found", "/entry/final_result_tomo/data (8, 10, 6)"]),
    (["-d", "/line", "odd.h5"], ["rank 1"]),
    (["-d", "/wide", "odd.h5"], ["non-singleton extra dimensions"]),
    (["-d", "/text", "odd.h5"], ["must be numeric"]),
    (["-i", "3", "recon.nxs"], ["-i/--axis 3 is out of range", "0..2"]),
    (["-i", "1", "-b", "10", "recon.nxs"], ["-b/--begin 10 is out of range", "0..9"]),
    (["-i", "1", "-s", "11", "recon.nxs"], ["-s/--stop 11 is out of range"]),
    (["-i", "1", "-b", "5", "-s", "5", "recon.nxs"], ["-s/--stop 5 is out of range", "6..10"]),
    (["-i", "1", "-o", "plain.tif", "recon.nxs"], ["exactly one integer field"]),
    (["-i", "1", "-o", "a_%d_%d.tif", "recon.nxs"], ["exactly one integer field"]),
    (["-i", "1", "-o", "../x_%05d.tif", "recon.nxs"], ["plain file name"]),
]


@pytest.mark.parametrize("args, fragments", NXS, ids=[" ".join(a) for a, _ in NXS])
def test_nxs2tiffux_bad_input(data, tmp_path, args, fragments):
    out = tmp_path / "out"
    done = run_cli("nxs2tiffux", *args, out, cwd=data)
    assert_clean_failure(done, *fragments, out=out)


UX = [
    (["-i", "1", "-u", "12"], ["takes 8, 16 or 8,16, not '12'"]),
    (["-i", "1", "-p", "50"], ["[0, 50)"]),
    (["-i", "1", "-p", "-1"], ["[0, 50)"]),
    (["-i", "1", "--lo", "2", "--hi", "1"], ["must be greater than lo"]),
    (["-i", "1", "--use_ref", "-r", "10"], ["reference image -r 10 does not exist", "0..9"]),
    (["-d", "/constant"], ["empty window", "--lo/--hi"]),
    (["-i", "1", "-j", "0"], ["-j/--workers must be at least 1"]),
]


@pytest.mark.parametrize("args, fragments", UX, ids=[" ".join(a) for a, _ in UX])
def test_nxs2tiffux_bad_options(data, tmp_path, args, fragments):
    out = tmp_path / "out"
    target = "odd.h5" if "/constant" in args else "recon.nxs"
    done = run_cli("nxs2tiffux", *args, target, out, cwd=data)
    assert_clean_failure(done, *fragments, out=out)


def test_nxs2tiff_float_data_needs_fp(data, tmp_path):
    out = tmp_path / "out"
    assert_clean_failure(run_cli("nxs2tiff", "-i", "1", data / "recon.nxs", out), "add --fp", "nxs2tiffux", out=out)


TIFF = [
    (["-i", "t_%03d.tif"], ["no input file 't_000.tif'", "s_000.tif"]),
    (["-i", "s_%03d.tif", "-s", "9"], ["s_005.tif is missing", "end at 4"]),
    (["-i", "s_%03d.tif", "-b", "3", "-s", "2"], ["must be greater than -b/--begin 3"]),
    (["-i", "s_%03d.tif", "-r", "7"], ["reference image -r 7 does not exist"]),
    (["-i", "s.tif"], ["exactly one integer field"]),
]


@pytest.mark.parametrize("args, fragments", TIFF, ids=[" ".join(a) for a, _ in TIFF])
def test_tiff2tiffux_bad_input(data, tmp_path, args, fragments):
    out = tmp_path / "out"
    assert_clean_failure(run_cli("tiff2tiffux", *args, data / "tiffs", out), *fragments, out=out)


def test_tiff2tiffux_multipage_names_the_file(data, tmp_path):
    out = tmp_path / "out"
    done = run_cli("tiff2tiffux", "-i", "m_%03d.tif", data / "multi", out)
    assert_clean_failure(done, "m_000.tif holds 3 pages", out=out)


def test_tiff2tiffux_refuses_to_overwrite_its_inputs(data, tmp_path):
    copy = tmp_path / "in"
    synthetic.write_tiff_dir(str(copy), "s_%03d.tif", count=3, height=4, width=5)
    before = {p.name: p.read_bytes() for p in copy.iterdir()}
    assert_clean_failure(run_cli("tiff2tiffux", "-i", "s_%03d.tif", copy, copy), "would overwrite an input file")
    assert {p.name: p.read_bytes() for p in copy.iterdir()} == before
    assert run_cli("tiff2tiffux", "-q", "-i", "s_%03d.tif", "-o", "u8_%03d.tif", copy, copy).returncode == 0


def test_output_directory_not_writable(data, tmp_path):
    """A regular file where the output directory should be cannot be created or written."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    done = run_cli("nxs2tiffux", "-i", "1", data / "recon.nxs", blocker / "out")
    assert_clean_failure(done, "cannot create output directory")


NOBODY = 65534  # root reads every file: a file without read permission is unreadable only to another user


@pytest.fixture
def shared(tmp_path) -> Iterator[Path]:
    """A directory uid 65534 can enter (pytest's tmp_path is private to root): under /tmp, mode 755,
    holding a readable recon.nxs, a directory of readable TIFFs, and ``w/``, writable by anyone, so
    that an output directory the command must not create could have been."""
    if os.geteuid() != 0:
        pytest.skip("not run as root: cannot run a command as uid 65534 to be denied a file (root reads every file)")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot run a command as uid 65534")
    root = Path(tempfile.mkdtemp(prefix="tomotiff-unreadable-", dir="/tmp"))
    try:
        root.chmod(0o755)
        synthetic.write_savu_recon(str(root / "recon.nxs"), height=8, count=10, width=6)
        synthetic.write_tiff_dir(str(root / "tiffs"), "s_%03d.tif", count=4, height=4, width=5)
        (root / "tiffs").chmod(0o755)
        (root / "w").mkdir(mode=0o777)
        (root / "w").chmod(0o777)  # mkdir's mode is masked by the umask
        yield root
    finally:
        shutil.rmtree(root)


def run_as_nobody(command: str, *args: object) -> Run:
    done = subprocess.run(
        ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", str(BIN / command), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def test_another_user_converts_readable_files(shared):
    """The control: as uid 65534 the same files convert, so each failure below is the permission's."""
    assert run_as_nobody("nxs2tiffux", "-q", "-i", "1", shared / "recon.nxs", shared / "w" / "u8").returncode == 0
    assert run_as_nobody("tiff2tiffux", "-q", "-i", "s_%03d.tif", shared / "tiffs", shared / "w" / "t").returncode == 0
    assert len(list((shared / "w" / "u8").glob("*.tif"))) == 10 and len(list((shared / "w" / "t").glob("*.tif"))) == 4


@pytest.mark.parametrize("command", ["nxs2tiff", "nxs2tiffux"])
def test_unreadable_hdf5_file(shared, command):
    (shared / "recon.nxs").chmod(0o000)
    out = shared / "w" / "out"
    done = run_as_nobody(command, "--fp" if command == "nxs2tiff" else "-q", "-i", "1", shared / "recon.nxs", out)
    assert_clean_failure(done, f"cannot read {shared / 'recon.nxs'}: permission denied", "chmod a+r", out=out)


@pytest.mark.parametrize("unreadable", ["s_000.tif", "s_002.tif"], ids=["first", "later"])
def test_unreadable_tiff_file(shared, unreadable):
    """Every input file is checked when the directory is opened: a later one too, before any output."""
    (shared / "tiffs" / unreadable).chmod(0o000)
    out = shared / "w" / "out"
    done = run_as_nobody("tiff2tiffux", "-i", "s_%03d.tif", "--lo", "0", "--hi", "1", shared / "tiffs", out)
    assert_clean_failure(done, f"cannot read {shared / 'tiffs' / unreadable}: permission denied", out=out)


def test_unreadable_tiff_directory(shared):
    (shared / "tiffs").chmod(0o700)
    out = shared / "w" / "out"
    done = run_as_nobody("tiff2tiffux", "-i", "s_%03d.tif", shared / "tiffs", out)
    assert_clean_failure(done, f"cannot list directory {shared / 'tiffs'}: permission denied", out=out)


def test_unreadable_manifest(shared):
    assert run_cli("nxs2tiff", "-q", "--fp", "-i", "1", shared / "recon.nxs", shared / "w" / "f32").returncode == 0
    (shared / "w" / "f32" / "manifest.json").chmod(0o000)
    assert_clean_failure(
        run_as_nobody("tomotiff", "verify", shared / "w" / "f32"), "cannot read manifest", "Permission denied"
    )


def test_unreadable_image_in_verify(shared):
    assert run_cli("nxs2tiff", "-q", "--fp", "-i", "1", shared / "recon.nxs", shared / "w" / "f32").returncode == 0
    (shared / "w" / "f32" / "image_00002.tif").chmod(0o000)
    assert_clean_failure(run_as_nobody("tomotiff", "verify", shared / "w" / "f32"), "image_00002.tif")
