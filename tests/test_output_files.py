"""What the written files are: readable by other tools, self-describing, atomic, verifiable."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import xxhash
from PIL import Image

from conftest import BIN, assert_quantised, read_tiff, run_cli, tiff_names
from tomotiff import FORMULA, __version__, dequantise, synthetic
from tomotiff.sink import file_checksum


@pytest.fixture(scope="module")
def files_recon(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("recon") / "recon.nxs"
    synthetic.write_savu_recon(str(path), height=48, count=40, width=56, chunks=(16, 8, 16))
    return path


def test_metadata_records_how_each_image_was_made(files_recon, tmp_path):
    done = run_cli(
        "nxs2tiffux",
        "-i",
        "1",
        "-b",
        "3",
        "-s",
        "9",
        "-u",
        "16",
        "--use_ref",
        "-p",
        "0.5",
        "-o",
        "s_%04d.tif",
        files_recon,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    image, meta = read_tiff(tmp_path / "s_0005.tif")
    assert meta["source"] == str(files_recon) and meta["dataset"] == "/entry/final_result_tomo/data"
    assert (meta["index"], meta["axis"], meta["bits"]) == (5, 1, 16)
    assert (meta["dtype_in"], meta["dtype_out"]) == ("float32", "uint16")
    assert meta["formula"] == FORMULA and meta["tomotiff_version"] == __version__
    assert meta["window"]["reference"] == 6 and meta["window"]["percent"] == 0.5  # middle of 3..8
    original = tifffile.imread(tmp_path / "s_0005.tif")
    restored = dequantise(original, meta["lo"], meta["hi"], meta["bits"])
    with tifffile.TiffFile(tmp_path / "s_0005.tif") as tif:
        assert tif.byteorder == "<" and tif.pages[0].compression == 1
    assert restored.shape == image.shape == (48, 56)


def test_manifest_lists_every_image_and_verify_checks_it(files_recon, tmp_path):
    assert run_cli("nxs2tiffux", "-q", "-i", "1", "--lo", "0", "--hi", "0.002", files_recon, tmp_path).returncode == 0
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [entry["index"] for entry in manifest["images"]] == list(range(40))
    assert (manifest["lo"], manifest["hi"], manifest["output_pattern"]) == (0.0, 0.002, "image_%05d.tif")
    ok = run_cli("tomotiff", "verify", tmp_path)
    assert ok.returncode == 0 and "all images present" in ok.stdout
    (tmp_path / "image_00007.tif").unlink()
    with open(tmp_path / "image_00008.tif", "r+b") as handle:
        handle.seek(-1, 2)
        handle.write(b"\x01")
    bad = run_cli("tomotiff", "verify", tmp_path)
    assert bad.returncode == 2
    assert "missing: image_00007.tif" in bad.stdout and "checksum mismatch: image_00008.tif" in bad.stdout

    # the checksum is XXH3-128 of the whole file, as `xxh128sum` prints it
    entry = manifest["images"][3]
    assert entry["xxh3_128"] == xxhash.xxh3_128((tmp_path / entry["file"]).read_bytes()).hexdigest()


@pytest.mark.parametrize("size", [0, 5, 64 << 20, (64 << 20) + 4099])
def test_file_checksum_is_xxh3_of_the_whole_file_across_map_windows(tmp_path, size):
    data = np.random.default_rng(size).integers(0, 256, size, np.uint8).tobytes()
    (tmp_path / "f").write_bytes(data)
    with open(tmp_path / "f", "rb") as handle:
        assert file_checksum(handle) == xxhash.xxh3_128(data).hexdigest()


def test_the_commands_limit_openblas_before_numpy_loads():
    """The console scripts set OPENBLAS_NUM_THREADS=1 (unless the user set it) before numpy loads."""
    code = (
        "import os, sys; import tomotiff.entry; assert 'numpy' not in sys.modules; "
        "sys.argv = ['tomotiff', '--version']\n"
        "try: tomotiff.entry.tomotiff_main()\nexcept SystemExit: pass\n"
        "assert 'numpy' in sys.modules; print(os.environ['OPENBLAS_NUM_THREADS'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    for given, expected in ((None, "1"), ("3", "3")):
        run_env = env if given is None else {**env, "OPENBLAS_NUM_THREADS": given}
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=run_env)
        assert done.returncode == 0 and done.stdout.split()[-1] == expected, done.stderr


def test_pillow_and_tiffinfo_read_the_output(files_recon, tmp_path):
    assert run_cli("nxs2tiffux", "-q", "-i", "1", "-s", "2", "-u", "8", files_recon, tmp_path / "u8").returncode == 0
    assert run_cli("nxs2tiffux", "-q", "-i", "1", "-s", "2", "-u", "16", files_recon, tmp_path / "u16").returncode == 0
    for bits in (8, 16):
        path = tmp_path / f"u{bits}" / "image_00001.tif"
        with Image.open(path) as pil:
            assert np.array_equal(np.asarray(pil), tifffile.imread(path))
    if shutil.which("tiffinfo") is None:
        pytest.skip("tiffinfo not installed (Debian package libtiff-tools; .ci/run installs it)")
    info = subprocess.run(["tiffinfo", str(tmp_path / "u16" / "image_00001.tif")], capture_output=True, text=True)
    assert (
        info.returncode == 0 and "Bits/Sample: 16" in info.stdout and "Image Width: 56 Image Length: 48" in info.stdout
    )


def test_big_endian_and_uint16_tiff_inputs(tmp_path):
    data = np.random.default_rng(5).integers(100, 60000, (3, 10, 12), dtype=np.uint16)
    for index, image in enumerate(data):
        tifffile.imwrite(tmp_path / f"b_{index}.tif", image, byteorder=">")
    done = run_cli(
        "tiff2tiffux",
        "-q",
        "-i",
        "b_%d.tif",
        "-o",
        "o_%d.tif",
        "--lo",
        "100",
        "--hi",
        "60000",
        tmp_path,
        tmp_path / "out",
    )
    assert done.returncode == 0, done.stderr
    for index in range(3):
        image, meta = read_tiff(tmp_path / "out" / f"o_{index}.tif")
        assert_quantised(image, data[index], 100, 60000, 8)
    assert meta["dtype_in"] == "uint16"


def test_nan_and_inf_pixels(tmp_path):
    image = np.linspace(-1, 1, 64, dtype=np.float32).reshape(8, 8)
    image[0, :3] = [np.nan, np.inf, -np.inf]
    for index in range(2):
        tifffile.imwrite(tmp_path / f"f_{index}.tif", image)
    assert run_cli("tiff2tiffux", "-q", "-i", "f_%d.tif", "-o", "u_%d.tif", tmp_path, tmp_path).returncode == 0
    out, meta = read_tiff(tmp_path / "u_1.tif")
    assert out[0, :3].tolist() == [0, 255, 0]
    assert (meta["lo"], meta["hi"]) == (float(image[0, 3]), 1.0)  # min/max of the finite pixels
    assert_quantised(out, image, meta["lo"], meta["hi"], 8)


def test_workers_do_not_change_the_bytes(files_recon, tmp_path):
    for workers in ("1", "2", "3"):
        done = run_cli("nxs2tiffux", "-q", "-i", "1", "-j", workers, "-p", "1", files_recon, tmp_path / workers)
        assert done.returncode == 0
    for name in tiff_names(tmp_path / "1"):
        assert (
            (tmp_path / "1" / name).read_bytes()
            == (tmp_path / "2" / name).read_bytes()
            == (tmp_path / "3" / name).read_bytes()
        )


def test_progress_is_silent_when_not_a_terminal_and_quiet_silences_stdout(files_recon, tmp_path):
    loud = run_cli("nxs2tiffux", "-i", "1", files_recon, tmp_path / "a")
    quiet = run_cli("nxs2tiffux", "-q", "-i", "1", files_recon, tmp_path / "b")
    assert loud.stderr == "" and "window: lo=" in loud.stdout and "20 workers" not in loud.stdout
    assert quiet.stdout == "" and quiet.stderr == ""


def test_a_second_run_into_the_same_directory_is_refused_while_one_writes(files_recon, tmp_path):
    import fcntl

    lock = tmp_path / ".manifest.json.lock"
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        done = run_cli("nxs2tiffux", "-i", "1", files_recon, tmp_path)
    assert done.returncode == 2 and "another tomotiff run is writing" in done.stderr
    assert tiff_names(tmp_path) == []


def _kill_when(process: subprocess.Popen, out: Path, files: int, during_write: bool) -> int:
    """SIGKILL ``process`` once ``files`` images exist (and, if asked, while a temporary file exists)."""
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        names = [p.name for p in out.iterdir()] if out.exists() else []
        finished = sum(name.endswith(".tif") and not name.startswith(".") for name in names)
        writing = any(name.endswith(".part") for name in names)
        if finished >= files and (writing or not during_write):
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    return process.returncode


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> tuple[Path, dict[str, bytes]]:
    """A volume that takes about a second to write, and its uninterrupted output."""
    root = tmp_path_factory.mktemp("kill")
    path = root / "big.nxs"
    synthetic.write_savu_recon(str(path), height=256, count=160, width=256, chunks=(32, 8, 32))
    assert (
        run_cli("nxs2tiffux", "-q", "-i", "1", "-j", "1", "--lo", "0", "--hi", "0.002", path, root / "ref").returncode
        == 0
    )
    return path, {p.name: p.read_bytes() for p in (root / "ref").iterdir()}


@pytest.mark.parametrize("point", range(20))
def test_sigkill_at_20_points_then_rerun_completes(big, tmp_path, point):
    """Killed after k images (even points) or in the middle of a write (odd points)."""
    path, reference = big
    out = tmp_path / "out"
    args = [str(BIN / "nxs2tiffux"), "-q", "-i", "1", "-j", "1", "--lo", "0", "--hi", "0.002", str(path), str(out)]
    process = subprocess.Popen(args, stdin=subprocess.DEVNULL)
    assert _kill_when(process, out, files=point * 4, during_write=point % 2 == 1) == -signal.SIGKILL
    for name in tiff_names(out) if out.exists() else []:
        assert (out / name).read_bytes() == reference[name], f"{name} is partial or wrong after SIGKILL"
    assert subprocess.run(args, stdin=subprocess.DEVNULL).returncode == 0
    assert {p.name: p.read_bytes() for p in out.iterdir()} == reference  # no temporary or lock files left


def test_progress_bar_on_a_terminal(files_recon, tmp_path):
    """stderr a terminal: a progress bar counting images; -q silences it."""
    import fcntl
    import pty
    import struct
    import termios

    def run_on_tty(*args: str) -> str:
        leader, follower = pty.openpty()
        fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a real terminal's size
        process = subprocess.Popen(
            [str(BIN / "nxs2tiffux"), *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=follower
        )
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        process.wait()
        os.close(leader)
        assert process.returncode == 0
        return b"".join(chunks).decode(errors="replace")

    assert "0/40 [" in run_on_tty("-i", "1", str(files_recon), str(tmp_path / "a"))  # cleared when done
    assert run_on_tty("-q", "-i", "1", str(files_recon), str(tmp_path / "b")) == ""


def test_contiguous_datasets_read_directly_give_the_same_pixels(tmp_path):
    """Contiguous, unfiltered data along a leading axis is read with preadv, past h5py's lock."""
    import h5py

    volume = np.random.default_rng(6).normal(0, 1, (1, 9, 20, 24)).astype(np.float32)
    with h5py.File(tmp_path / "c.h5", "w") as file:
        file["v"] = volume
        file["be"] = volume.astype(">f4")  # big-endian: not native, so read through HDF5
    for name in ("v", "be"):
        done = run_cli("nxs2tiff", "-q", "--fp", "-d", name, "-i", "1", "-b", "2", tmp_path / "c.h5", tmp_path / name)
        assert done.returncode == 0, done.stderr
        for index in (2, 8):
            image, _ = read_tiff(tmp_path / name / f"image_{index:05d}.tif")
            assert np.array_equal(image, volume[0, index])
    cut = tmp_path / "cut.h5"
    cut.write_bytes((tmp_path / "c.h5").read_bytes()[: 2048 + volume.nbytes // 2])
    done = run_cli("nxs2tiff", "-q", "--fp", "-d", "v", "-i", "1", cut, tmp_path / "cut")
    assert done.returncode == 2 and "Traceback" not in done.stderr and str(cut) in done.stderr


@pytest.mark.parametrize("codec", ["Zstd", "Blosc", "LZ4"])
def test_compressed_hdf5_input_through_hdf5plugin(tmp_path, codec):
    import h5py
    import hdf5plugin

    volume = np.random.default_rng(8).normal(0, 1e-3, (12, 9, 14)).astype(np.float32)
    with h5py.File(tmp_path / "z.h5", "w") as file:
        file.create_dataset("v", data=volume, chunks=(4, 3, 14), **getattr(hdf5plugin, codec)())
    done = run_cli(
        "nxs2tiffux",
        "-q",
        "-d",
        "v",
        "-i",
        "1",
        "-u",
        "16",
        "--lo",
        "-3e-3",
        "--hi",
        "3e-3",
        tmp_path / "z.h5",
        tmp_path / "out",
    )
    assert done.returncode == 0, done.stderr
    assert_quantised(tifffile.imread(tmp_path / "out" / "image_00005.tif"), volume[:, 5, :], -3e-3, 3e-3, 16)
