"""Faults while writing and damaged inputs: a clear error, no partial file, inputs untouched."""

import hashlib
import resource
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import BIN, run_cli, tiff_names
from tomotiff import synthetic


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def guarded_recon(tmp_path) -> Path:
    """The input of a test; tomotiff must leave it byte for byte as it was, whatever happens."""
    path = tmp_path / "in" / "recon.nxs"
    synthetic.write_savu_recon(str(path), height=64, count=30, width=64)
    before = digest(path)
    yield path
    assert digest(path) == before, "the input file was modified"


def no_partial_files(directory: Path) -> bool:
    return not directory.exists() or not any(p.name.endswith(".part") for p in directory.iterdir())


def test_file_size_limit_fails_cleanly_and_a_rerun_completes(guarded_recon, tmp_path):
    """RLIMIT_FSIZE (as `ulimit -f`): the write fails with EFBIG, like a full disk."""
    before = digest(guarded_recon)
    out = tmp_path / "out"
    limit = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))  # noqa: E731 (below one image)
    done = subprocess.run(
        [str(BIN / "nxs2tiffux"), "-i", "1", str(guarded_recon), str(out)],
        preexec_fn=limit,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot write" in done.stderr and str(out) in done.stderr and "check free space" in done.stderr
    assert tiff_names(out) == [] and no_partial_files(out)
    assert run_cli("nxs2tiffux", "-q", "-i", "1", guarded_recon, out).returncode == 0
    assert len(tiff_names(out)) == 30 and no_partial_files(out) and digest(guarded_recon) == before


def test_output_directory_deleted_mid_run(tmp_path):
    path = tmp_path / "big.nxs"
    synthetic.write_savu_recon(str(path), height=256, count=200, width=256, chunks=(32, 8, 32))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [str(BIN / "nxs2tiffux"), "-q", "-j", "1", "-i", "1", "--lo", "0", "--hi", "1e-3", str(path), str(out)],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (out.exists() and len(tiff_names(out)) >= 3):
        time.sleep(0.001)
    out.rename(tmp_path / "gone")  # atomic, unlike rmtree racing the writer; then delete it
    shutil.rmtree(tmp_path / "gone", ignore_errors=True)
    stderr = process.communicate()[1]
    assert process.returncode == 2 and "Traceback" not in stderr and "cannot write" in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_truncated_hdf5_input(guarded_recon, tmp_path):
    cut = tmp_path / "cut.nxs"
    data = guarded_recon.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    done = run_cli("nxs2tiffux", "-i", "1", cut, tmp_path / "out")
    assert done.returncode == 2 and "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1
    assert str(cut) in done.stderr
    assert not (tmp_path / "out").exists() or tiff_names(tmp_path / "out") == []


def test_corrupted_tiff_header(tmp_path):
    synthetic.write_tiff_dir(str(tmp_path / "in"), "s_%02d.tif", count=4, height=8, width=8)
    broken = tmp_path / "in" / "s_02.tif"
    data = bytearray(broken.read_bytes())
    data[0:4] = b"\x00\x01\x02\x03"  # no longer a TIFF byte-order mark
    broken.write_bytes(bytes(data))
    inputs = {p.name: digest(p) for p in (tmp_path / "in").iterdir()}
    done = run_cli("tiff2tiffux", "-i", "s_%02d.tif", "--lo", "0", "--hi", "1e-3", tmp_path / "in", tmp_path / "out")
    assert {p.name: digest(p) for p in (tmp_path / "in").iterdir()} == inputs
    assert done.returncode == 2 and "Traceback" not in done.stderr and "s_02.tif" in done.stderr
    assert no_partial_files(tmp_path / "out")
    for name in tiff_names(tmp_path / "out"):  # images finished before the failure are complete
        tifffile.imread(tmp_path / "out" / name)


def test_symlinks_in_the_output_directory_are_replaced_not_followed(guarded_recon, tmp_path):
    outside = tmp_path / "precious.tif"
    outside.write_bytes(b"do not touch")
    out = tmp_path / "out"
    out.mkdir()
    (out / "image_00000.tif").symlink_to(outside)
    (out / ".image_00001.tif.part").symlink_to(outside)
    assert run_cli("nxs2tiffux", "-q", "-i", "1", guarded_recon, out).returncode == 0
    assert outside.read_bytes() == b"do not touch"
    assert not (out / "image_00000.tif").is_symlink() and tifffile.imread(out / "image_00000.tif").shape == (64, 64)
    assert no_partial_files(out)


def test_read_only_output_directory(guarded_recon, tmp_path):
    """A read-only bind mount in a private mount namespace (root ignores file permissions)."""
    out = tmp_path / "ro"
    out.mkdir()
    script = 'mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" || exit 99; shift; exec "$@"'
    done = subprocess.run(
        [
            "unshare",
            "-m",
            "sh",
            "-c",
            script,
            "sh",
            str(out),
            str(BIN / "nxs2tiffux"),
            "-i",
            "1",
            str(guarded_recon),
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode == 99 or shutil.which("unshare") is None:
        pytest.skip(f"cannot make a read-only mount here: {done.stderr.strip()}")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "is not writable" in done.stderr and str(out) in done.stderr and list(out.iterdir()) == []


OPTIONS = st.lists(
    st.sampled_from(
        [
            ["-i", "0"],
            ["-i", "1"],
            ["-i", "2"],
            ["-i", "5"],
            ["-i", "x"],
            ["-b", "3"],
            ["-b", "-1"],
            ["-s", "4"],
            ["-s", "99"],
            ["-u", "8"],
            ["-u", "16"],
            ["-u", "7"],
            ["--lo", "0"],
            ["--hi", "1e-3"],
            ["--hi", "-1"],
            ["--use_ref"],
            ["-r", "2"],
            ["-r", "999"],
            ["-p", "0.5"],
            ["-p", "60"],
            ["-o", "x_%03d.tif"],
            ["-o", "bad"],
            ["-d", "/entry/final_result_tomo/data"],
            ["-d", "/nope"],
            ["-j", "2"],
            ["-j", "0"],
            ["--fp"],
            ["-q"],
        ]
    ),
    max_size=5,
)


TIFF_OPTIONS = st.lists(
    st.sampled_from(
        [
            ["-i", "s_%02d.tif"],
            ["-i", "s_%d.tif"],
            ["-i", "none"],
            ["-o", "o_%03d.tif"],
            ["-o", "s_%02d.tif"],
            ["-b", "2"],
            ["-s", "5"],
            ["-s", "50"],
            ["-u", "16"],
            ["--lo", "0"],
            ["--hi", "1e-3"],
            ["--use_ref"],
            ["-r", "3"],
            ["-r", "99"],
            ["-p", "1"],
            ["--window", "global"],
            ["--sample", "0"],
            ["--bin", "2"],
            ["--crop", "1", "1", "1", "1"],
            ["--crop", "9", "9", "0", "0"],
            ["--stack"],
            ["--compression", "zstd"],
        ]
    ),
    max_size=6,
)


@settings(max_examples=40, deadline=None)
@given(OPTIONS, st.sampled_from(["nxs2tiff", "nxs2tiffux"]))
def test_fuzz_argument_combinations_succeed_or_fail_cleanly(tmp_path_factory, options, command):
    root = tmp_path_factory.mktemp("fuzz")
    path = root / "recon.nxs"
    synthetic.write_savu_recon(str(path), height=6, count=8, width=5)
    args = [part for option in options for part in option]
    check_clean_outcome(run_cli(command, *args, path, root / "out"))


@settings(max_examples=30, deadline=None)
@given(TIFF_OPTIONS)
def test_fuzz_tiff2tiffux_arguments_succeed_or_fail_cleanly(tmp_path_factory, options):
    root = tmp_path_factory.mktemp("fuzz")
    synthetic.write_tiff_dir(str(root / "in"), "s_%02d.tif", count=8, height=6, width=5)
    inputs = {p.name: digest(p) for p in (root / "in").iterdir()}
    args = [part for option in options for part in option]
    check_clean_outcome(run_cli("tiff2tiffux", *args, root / "in", root / "in"))  # writing beside its inputs
    assert {name: digest(root / "in" / name) for name in inputs} == inputs


def check_clean_outcome(done) -> None:
    """Success, or one line saying what is wrong with exit code 2: never a traceback."""
    assert "Traceback" not in done.stderr
    assert done.returncode in (0, 2), done.stderr
    if done.returncode == 2:
        assert len(done.stderr.strip().splitlines()) == 1 and "error:" in done.stderr


def test_two_runs_into_one_directory_never_mix(tmp_path):
    """A second run started while the first writes is refused (a lock); the first completes."""
    path = tmp_path / "big.nxs"
    synthetic.write_savu_recon(str(path), height=128, count=1200, width=128, chunks=(32, 8, 32))
    out = tmp_path / "out"
    args = ["-q", "-j", "1", "-i", "1", "--lo", "0", "--hi", "1e-3", path, out]
    first = subprocess.Popen([str(BIN / "nxs2tiffux"), *map(str, args)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (out.exists() and tiff_names(out)):
        time.sleep(0.001)
    second = run_cli("nxs2tiffux", "-u", "16", *args)
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert second.returncode == 2 and "another tomotiff run is writing" in second.stderr
    assert len(tiff_names(out)) == 1200 and all(
        tifffile.imread(out / name).dtype.name == "uint8" for name in tiff_names(out)
    )
