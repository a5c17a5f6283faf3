"""Hostile inputs to every command (nxs2tiff, nxs2tiffux, tiff2tiffux, tomotiff verify): each is one
line on stderr saying what is wrong, exit code 2, no traceback and no output directory; nothing
hangs; a reader that leaves the pipe early stops nothing.

In-process (``*_main(argv)``) wherever a subprocess would prove nothing more: an exception that
escapes is the traceback, and fails the test. Subprocesses where they are the point: a FIFO (a hang
is caught by a timeout), a file locked by its writer, and a pipe whose reader has gone.
"""

import json
import os
import random
import re
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from conftest import BIN, assert_quantised, run_script, tiff_names
from tomotiff import synthetic
from tomotiff.cli import nxs2tiff_main, nxs2tiffux_main, tiff2tiffux_main, tomotiff_main

Main = Callable[[list[str] | None], int]
HDF5_COMMANDS = {"nxs2tiff": nxs2tiff_main, "nxs2tiffux": nxs2tiffux_main}
SEED = 13  # the truncation offsets


def fails_cleanly(main: Main, args: list, capsys, caplog, *fragments: str, out: Path | None = None) -> str:
    """Run a command in-process; it must return 2 with one line on stderr holding ``fragments``,
    log nothing (outside pytest a log record is a line of its own on stderr), and, given ``out``,
    not create it. Returns the line."""
    rc = main([str(arg) for arg in args])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, lines
    assert not caplog.records, [record.getMessage() for record in caplog.records]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    if out is not None:
        assert not out.exists(), f"{out} was created on bad input"
    return lines[0]


def cuts(data: bytes, count: int = 6) -> list[int]:
    """Seeded offsets to truncate ``data`` at, from the first bytes to the last."""
    rng = random.Random(SEED)
    return sorted({4, 8, *(rng.randrange(9, len(data)) for _ in range(count))})


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> Path:
    """A good recon.nxs, and beside it HDF5 inputs that are empty, a directory, cut short at seeded
    offsets, damaged in one signature of their metadata, or hold datasets that are not stacks of images."""
    root = tmp_path_factory.mktemp("hostile")
    synthetic.write_savu_recon(str(root / "recon.nxs"), height=8, count=10, width=6)
    (root / "empty.nxs").write_bytes(b"")
    (root / "dir.nxs").mkdir()
    data = (root / "recon.nxs").read_bytes()
    for cut in cuts(data):
        (root / f"cut_{cut}.nxs").write_bytes(data[:cut])
    for signature in (b"TREE", b"HEAP", b"SNOD", b"GCOL"):  # B-tree, local heap, symbol table, global heap
        start = data.index(signature)
        (root / f"damaged_{signature.decode()}.nxs").write_bytes(data[:start] + b"XXXX" + data[start + 4 :])
    with h5py.File(root / "odd.h5", "w") as file:
        file["compound"] = np.zeros((3, 4, 5), [("a", "f4"), ("b", "i4")])
        file["strings"] = np.full((3, 4, 5), b"ab")
        file["text"] = np.full((3, 4, 5), "ab", h5py.string_dtype())
        file["zero"] = np.zeros((0, 4, 5), np.float32)
        file["row"] = np.arange(21, dtype=np.float32).reshape(3, 1, 7)
        file["col"] = np.arange(21, dtype=np.float32).reshape(3, 7, 1)
    return root


HDF5_INPUTS = [
    ("empty.nxs", [], ["empty.nxs is empty (0 bytes)"]),
    ("dir.nxs", [], ["dir.nxs is a directory", "tiff2tiffux"]),
    ("damaged_TREE.nxs", [], ["cannot read the structure of", "wrong B-tree signature", "the file is damaged"]),
    ("damaged_HEAP.nxs", [], ["bad local heap signature", "the file is damaged"]),
    ("damaged_SNOD.nxs", [], ["bad symbol table node signature", "the file is damaged"]),
    ("damaged_GCOL.nxs", [], ["bad global heap collection signature", "the file is damaged"]),
    ("odd.h5", ["-d", "/compound"], ["/compound has type", "images must be numeric"]),
    ("odd.h5", ["-d", "/strings"], ["/strings has type |S2", "images must be numeric"]),
    ("odd.h5", ["-d", "/text"], ["/text has type object", "images must be numeric"]),
    ("odd.h5", ["-d", "/zero"], ["holds no pixels (no images along axis 0)"]),
]


@pytest.mark.parametrize("command", HDF5_COMMANDS)
@pytest.mark.parametrize("name, options, fragments", HDF5_INPUTS, ids=[f"{n} {' '.join(o)}" for n, o, _ in HDF5_INPUTS])
def test_hostile_hdf5_input(hostile, tmp_path, capsys, caplog, command, name, options, fragments):
    out = tmp_path / "out"
    fails_cleanly(HDF5_COMMANDS[command], [*options, hostile / name, out], capsys, caplog, *fragments, out=out)


@pytest.mark.parametrize("command", HDF5_COMMANDS)
def test_hdf5_truncated_at_random_offsets(hostile, tmp_path, capsys, caplog, command):
    """Cut short anywhere, from inside the superblock to the last byte: named as truncated (or, cut
    within the signature, as not HDF5 at all), before any output."""
    out = tmp_path / "out"
    cut_files = sorted(hostile.glob("cut_*.nxs"), key=lambda path: int(path.stem[4:]))
    assert len(cut_files) >= 5
    for path in cut_files:
        line = fails_cleanly(HDF5_COMMANDS[command], ["-i", "1", path, out], capsys, caplog, str(path), out=out)
        assert "copy it again" in line or "is not an HDF5 file" in line, line


@pytest.mark.parametrize("command", HDF5_COMMANDS)
def test_hdf5_file_locked_by_its_writer(tmp_path, command):
    """HDF5 locks a file open for writing: the message says so (a subprocess, as the writer is this one)."""
    path, out = tmp_path / "writing.nxs", tmp_path / "out"
    with h5py.File(path, "w") as file:
        file["data"] = np.zeros((3, 4, 5), np.float32)
        file.flush()
        done = run_script(command, "-d", "/data", path, out)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert f"{path} is locked by a program writing it" in lines[0] and "HDF5_USE_FILE_LOCKING=FALSE" in lines[0]
    assert not out.exists()


@pytest.fixture
def good_tiffs(tmp_path) -> Callable[[str], Path]:
    """A directory of four good TIFFs (s_000.tif .. s_003.tif), 40 x 50 float32, made on demand."""

    def make(name: str) -> Path:
        directory = tmp_path / name
        synthetic.write_tiff_dir(str(directory), "s_%03d.tif", count=4, height=40, width=50)
        return directory

    return make


def tiff2tiffux_fails(directory: Path, tmp_path: Path, capsys, caplog, *fragments: str) -> str:
    out = tmp_path / "out"
    args = ["-i", "s_%03d.tif", "--lo", "0", "--hi", "1e-3", directory, out]
    return fails_cleanly(tiff2tiffux_main, args, capsys, caplog, *fragments, out=out)


@pytest.mark.parametrize("index", [0, 2], ids=["first", "later"])
@pytest.mark.parametrize("kind", ["empty", "directory"])
def test_tiff_that_is_no_file(good_tiffs, tmp_path, capsys, caplog, kind, index):
    """Each input is checked when the directory is opened, a later one too: nothing is written."""
    directory = good_tiffs("in")
    path = directory / f"s_{index:03d}.tif"
    path.unlink()
    if kind == "empty":
        path.write_bytes(b"")
    else:
        path.mkdir()
    what = "is empty (0 bytes)" if kind == "empty" else "is a directory; tiff2tiffux reads one TIFF file per image"
    tiff2tiffux_fails(directory, tmp_path, capsys, caplog, f"{path} {what}")


def test_tiff_truncated_at_random_offsets(good_tiffs, tmp_path, capsys, caplog):
    """The first file cut short anywhere, in its header, its IFD or its pixels: named, before any output."""
    directory = good_tiffs("in")
    first = directory / "s_000.tif"
    data = first.read_bytes()
    for cut in cuts(data):
        first.write_bytes(data[:cut])
        line = tiff2tiffux_fails(directory, tmp_path, capsys, caplog, str(first), "copy it again")
        assert re.search(r"is truncated|holds no image|cannot read", line), (cut, line)


def test_tiff_truncated_in_its_pixels_is_named_as_truncated(good_tiffs, tmp_path, capsys, caplog):
    directory = good_tiffs("in")
    first = directory / "s_000.tif"
    data = first.read_bytes()
    first.write_bytes(data[: len(data) - 100])
    tiff2tiffux_fails(
        directory,
        tmp_path,
        capsys,
        caplog,
        f"{first} is truncated: its image data ends at byte {len(data)}, the file at {len(data) - 100}",
    )


@pytest.mark.parametrize("offset", [3, 10**8], ids=["inside-header", "past-the-end"])
def test_tiff_with_a_bad_ifd_offset(good_tiffs, tmp_path, capsys, caplog, offset):
    """tifffile logs a first IFD offset past the end as a warning: folded into the one line, not a line of its own."""
    directory = good_tiffs("in")
    first = directory / "s_000.tif"
    data = bytearray(first.read_bytes())
    data[4:8] = offset.to_bytes(4, "little" if data[:2] == b"II" else "big")
    first.write_bytes(bytes(data))
    line = tiff2tiffux_fails(directory, tmp_path, capsys, caplog, str(first), "copy it again")
    if offset > len(data):
        assert "holds no image" in line and f"tifffile: invalid offset to first page {offset}" in line


def patch_tag(path: Path, name: str, value: int) -> None:
    """Overwrite the value of tag ``name`` of the first page of ``path``, in the tag's own type."""
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags[name]
        layout, where = tif.byteorder + {3: "H", 4: "I"}[int(tag.dtype)], tag.valueoffset
    data = bytearray(path.read_bytes())
    struct.pack_into(layout, data, where, value)
    path.write_bytes(bytes(data))


DAMAGED_SIZES = [
    ("none", 400, "s_000.tif", "(80000 bytes) but holds 8000 bytes"),  # would read zeros past the data
    ("zlib", 4_000_000_000, "s_000.tif", "4000000000 x 50 image"),  # more memory than the machine has
    ("none", 400, "s_002.tif", "(80000 bytes) but holds 8000 bytes"),
]


@pytest.mark.parametrize("compression, length, name, fragment", DAMAGED_SIZES, ids=["short", "huge", "later"])
def test_tiff_damaged_in_its_size(good_tiffs, tmp_path, capsys, caplog, compression, length, name, fragment):
    """A damaged ImageLength: found when the first file is opened, or a later one read."""
    directory = good_tiffs("in")
    path = directory / name
    tifffile.imwrite(path, tifffile.imread(path), compression=None if compression == "none" else compression)
    patch_tag(path, "ImageLength", length)
    out = tmp_path / "out"
    args = ["-i", "s_%03d.tif", "--lo", "0", "--hi", "1e-3", directory, out]
    line = f"{path} is damaged: it declares a {length} x 50 image of float32"
    if name == "s_000.tif":
        fails_cleanly(tiff2tiffux_main, args, capsys, caplog, line, fragment, "copy it again", out=out)
    else:  # the images before it are complete, and no manifest claims the run whole
        fails_cleanly(tiff2tiffux_main, args, capsys, caplog, line, fragment)
        assert not (out / "manifest.json").exists() and not list(out.glob(".*.part"))


def test_tiff_input_that_is_an_empty_file(hostile, tmp_path, capsys, caplog):
    """A file as INPUT is read as a multi-page TIFF (tomotiff.tiff_stack)."""
    out = tmp_path / "out"
    fails_cleanly(tiff2tiffux_main, [hostile / "empty.nxs", out], capsys, caplog, str(hostile / "empty.nxs"), out=out)


def test_tiff_stack_truncated_at_random_offsets(tmp_path, capsys, caplog):
    stack, out = tmp_path / "stack.tif", tmp_path / "out"
    tifffile.imwrite(stack, np.random.default_rng(0).random((5, 40, 50), np.float32))
    data = stack.read_bytes()
    for cut in cuts(data):
        stack.write_bytes(data[:cut])
        fails_cleanly(tiff2tiffux_main, ["--lo", "0", "--hi", "1", stack, out], capsys, caplog, str(stack), out=out)


# FIFOs: opening one for reading blocks until a writer appears, so each is a subprocess with a timeout.


def fifo_fails(command: str, *args: object, out: Path, fragment: str) -> None:
    done = run_script(command, *args, out, timeout=120)  # raises TimeoutExpired (fails) on a hang
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert fragment in lines[0], lines[0]
    assert not out.exists()


@pytest.mark.parametrize("command", HDF5_COMMANDS)
def test_hdf5_input_that_is_a_fifo(tmp_path, command):
    os.mkfifo(tmp_path / "scan.nxs")
    fifo_fails(
        command,
        tmp_path / "scan.nxs",
        out=tmp_path / "out",
        fragment=f"{tmp_path / 'scan.nxs'} is a FIFO (named pipe), not a regular file",
    )


@pytest.mark.parametrize("index", [0, 2], ids=["first", "later"])
def test_tiff_that_is_a_fifo(good_tiffs, tmp_path, index):
    directory = good_tiffs("in")
    path = directory / f"s_{index:03d}.tif"
    path.unlink()
    os.mkfifo(path)
    fifo_fails(
        "tiff2tiffux",
        "-i",
        "s_%03d.tif",
        "--lo",
        "0",
        "--hi",
        "1",
        directory,
        out=tmp_path / "out",
        fragment=f"{path} is a FIFO (named pipe), not a regular file",
    )


def test_input_directory_that_is_a_fifo(tmp_path):
    os.mkfifo(tmp_path / "in")
    fifo_fails(
        "tiff2tiffux",
        tmp_path / "in",
        out=tmp_path / "out",
        fragment=f"{tmp_path / 'in'} is neither a directory nor a regular file",
    )


# tomotiff verify


@pytest.fixture
def written(tmp_path) -> Path:
    out = tmp_path / "out"
    synthetic.write_savu_recon(str(tmp_path / "recon.nxs"), height=8, count=4, width=6)
    assert nxs2tiff_main(["-q", "--fp", str(tmp_path / "recon.nxs"), str(out)]) == 0
    return out


def test_verify_a_missing_directory(tmp_path, capsys, caplog):
    fails_cleanly(tomotiff_main, ["verify", tmp_path / "nowhere"], capsys, caplog, "no manifest at")


def test_verify_a_manifest_that_is_not_json(written, capsys, caplog):
    (written / "manifest.json").write_text("not JSON {")
    fails_cleanly(tomotiff_main, ["verify", written], capsys, caplog, "cannot read manifest", "manifest.json")


def test_verify_a_manifest_without_images(written, capsys, caplog):
    content = json.loads((written / "manifest.json").read_text())
    del content["images"]
    (written / "manifest.json").write_text(json.dumps(content))
    fails_cleanly(tomotiff_main, ["verify", written], capsys, caplog, "manifest.json", "images")


# 1 x N images: rank 3 with a singleton row or column is a stack of real images of one row (column)


@pytest.mark.parametrize("name, shape", [("row", (1, 7)), ("col", (7, 1))])
def test_one_row_or_one_column_images_convert(hostile, tmp_path, name, shape):
    data = np.arange(21, dtype=np.float32).reshape(3, *shape)
    f32, u16, again = tmp_path / "f32", tmp_path / "u16", tmp_path / "again"
    assert nxs2tiff_main(["-q", "--fp", "-d", f"/{name}", str(hostile / "odd.h5"), str(f32)]) == 0
    assert (
        nxs2tiffux_main(
            ["-q", "-u", "16", "--lo", "0", "--hi", "20", "-d", f"/{name}", str(hostile / "odd.h5"), str(u16)]
        )
        == 0
    )
    assert tiff2tiffux_main(["-q", "-u", "16", "--lo", "0", "--hi", "20", str(f32), str(again)]) == 0  # read back
    for index in range(3):
        file = f"image_{index:05d}.tif"
        np.testing.assert_array_equal(tifffile.imread(f32 / file), data[index])
        assert_quantised(tifffile.imread(u16 / file), data[index], 0, 20, 16)
        np.testing.assert_array_equal(tifffile.imread(again / file), tifffile.imread(u16 / file))


def test_one_pixel_images_read_back(tmp_path):
    """1 x 1 TIFFs: every dimension is 1, and still an image."""
    for index, value in enumerate((0.0, 0.5, 1.0)):
        (tmp_path / "in").mkdir(exist_ok=True)
        tifffile.imwrite(tmp_path / "in" / f"s_{index:03d}.tif", np.full((1, 1), value, np.float32))
    assert (
        tiff2tiffux_main(
            ["-q", "-i", "s_%03d.tif", "--lo", "0", "--hi", "1", str(tmp_path / "in"), str(tmp_path / "out")]
        )
        == 0
    )
    assert [int(tifffile.imread(tmp_path / "out" / f"s_{i:03d}.tif")[0, 0]) for i in range(3)] == [0, 128, 255]


def test_warnings_of_a_tiff_that_reads_are_still_logged(good_tiffs, tmp_path, caplog):
    """Catching tifffile's warnings for the error message keeps those of a file that reads in full."""
    directory = good_tiffs("in")
    path = directory / "s_001.tif"
    tifffile.imwrite(path, tifffile.imread(path), resolution=(1, 1), resolutionunit=2)
    patch_tag(path, "ResolutionUnit", 193)  # no such unit
    assert (
        tiff2tiffux_main(["-q", "-i", "s_%03d.tif", "--lo", "0", "--hi", "1", str(directory), str(tmp_path / "out")])
        == 0
    )
    assert any("193" in record.getMessage() and record.name == "tifffile" for record in caplog.records)


# A reader that leaves early


def images_complete(out: Path, count: int) -> None:
    assert len(tiff_names(out)) == count and (out / "manifest.json").exists()
    assert tomotiff_main(["verify", str(out)]) == 0


@pytest.mark.parametrize("both", [False, True], ids=["stdout", "stdout-and-stderr"])
@pytest.mark.parametrize("command", ["nxs2tiff", "nxs2tiffux", "tiff2tiffux"])
def test_a_closed_pipe_stops_nothing(hostile, tmp_path, command, both):
    """The reader closes the pipe before the first line (``cmd | head -c0``): every image and the
    manifest are still written, the exit code is 0, and stderr holds no traceback."""
    out = tmp_path / "out"
    if command == "tiff2tiffux":
        synthetic.write_tiff_dir(str(tmp_path / "in"), "s_%03d.tif", count=5, height=8, width=6)
        args, count = ["-i", "s_%03d.tif", tmp_path / "in", out], 5
    else:
        args, count = ["--fp" if command == "nxs2tiff" else "-u16", "-i", "1", hostile / "recon.nxs", out], 10
    process = subprocess.Popen(
        [str(BIN / command), *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if both else subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    process.stdout.close()  # before the command has started: its first line meets a closed pipe
    stderr = b"" if both else process.stderr.read()
    assert process.wait(timeout=120) == 0, stderr
    assert b"Traceback" not in stderr and b"Error" not in stderr, stderr
    images_complete(out, count)


def test_head_sees_the_first_line_and_the_run_completes(hostile, tmp_path):
    """As in the issue: ``nxs2tiffux ... | head -1``."""
    out = tmp_path / "out"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"'{BIN / 'nxs2tiffux'}' -i 1 '{hostile / 'recon.nxs'}' '{out}' | head -1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.startswith("window: lo=") and len(done.stdout.splitlines()) == 1
    images_complete(out, 10)


def test_verify_into_a_closed_pipe(hostile, tmp_path):
    assert nxs2tiff_main(["-q", "--fp", "-i", "1", str(hostile / "recon.nxs"), str(tmp_path / "out")]) == 0
    process = subprocess.Popen(
        [str(BIN / "tomotiff"), "verify", str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=120) == 0 and not stderr, stderr
