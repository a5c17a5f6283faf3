"""The commands timed on each case: tomotiff, the naive loop, the I/O ceiling and nabu-cast.

Nothing is installed here: a program that is not found gives a row "not available: <why>",
which the report lists with no figures, and whose ratios and targets read n/a and N/A.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cases import TIFF_PATTERN, Volume
from measure import Row, last_line

HERE = Path(__file__).resolve().parent
NAIVE = HERE / "naive.py"
CEILING = HERE / "ceiling.py"
TOMOTIFF_TOOLS = ("nxs2tiffux", "nxs2tiff", "tiff2tiffux")
PEER = "nabu-cast"


@dataclasses.dataclass(frozen=True)
class Tool:
    """A program found on this machine, or why there is none."""

    path: str | None
    why: str = ""


def find_tool(name: str, bin_dir: Path | None) -> Tool:
    """Look in `bin_dir` if given, else next to this interpreter (an unactivated venv), then on PATH."""
    if bin_dir:
        search, where = str(bin_dir), str(bin_dir)
    else:
        here = Path(sys.executable).parent
        search, where = os.pathsep.join([str(here), os.environ.get("PATH", "")]), f"{here} or on PATH"
    path = shutil.which(name, path=search)
    return Tool(path, "" if path else f"{name} not found in {where}")


def find_peer() -> Tool:
    """nabu-cast if it runs (it comes with `pip install nabu`, which this benchmark leaves to you)."""
    tool = find_tool(PEER, None)
    if tool.path is None:
        return Tool(None, f"{tool.why} (pip install nabu provides it)")
    done = subprocess.run([tool.path, "--help"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode:
        return Tool(None, f"{tool.path} --help failed: {last_line(done.stderr)}")
    return tool


def row_for(key: str, label: str, tool: Tool, args: list[str], images: int | None = None) -> Row:
    """A command of `tool`, or a row saying why it is not available, so the report still lists it."""
    if tool.path is None:
        return Row(key, label, None, status=f"not available: {tool.why}", images=images)
    return Row(key, label, [tool.path, *args], images=images)


def window_args(volume: Volume) -> list[str]:
    """`--lo=` form, so a negative bound is never mistaken for an option."""
    lo, hi = volume.spec.window
    return [f"--lo={lo:g}", f"--hi={hi:g}"]


def tomotiff_u8_args(volume: Volume, outdir: Path, jobs: int) -> list[str]:
    """What a user would type for this case: nxs2tiffux for HDF5, tiff2tiffux for a TIFF directory."""
    spec = volume.spec
    common = ["-u", "8", *window_args(volume), "-j", str(jobs), str(volume.path), str(outdir)]
    if spec.dataset is None:
        return ["-q", "-i", TIFF_PATTERN, *common]
    return ["-q", "-d", spec.dataset, "-i", str(spec.axis), *common]


def tomotiff_u8_row(volume: Volume, tools: dict[str, Tool], outdir: Path, jobs: int) -> Row:
    tool = tools["tiff2tiffux" if volume.spec.dataset is None else "nxs2tiffux"]
    return row_for(f"tomotiff-u8-j{jobs}", f"tomotiff uint8 -j {jobs}", tool, tomotiff_u8_args(volume, outdir, jobs))


def startup_row(volume: Volume, tools: dict[str, Tool], outdir: Path) -> Row:
    """The one-worker command on the first image only: what every run pays before and after its work
    (interpreter, imports, opening the file, exit), measured beside the full runs."""
    tool = tools["tiff2tiffux" if volume.spec.dataset is None else "nxs2tiffux"]
    args = [*tomotiff_u8_args(volume, outdir, 1), "-s", "1"]
    return row_for("tomotiff-u8-start", "tomotiff uint8, first image only", tool, args, images=1)


def tomotiff_fp_row(volume: Volume, tools: dict[str, Tool], outdir: Path) -> Row:
    spec = volume.spec
    args = ["-q", "--fp", "-d", spec.dataset, "-i", str(spec.axis), "-j", "2", str(volume.path), str(outdir)]
    return row_for("tomotiff-fp-j2", "tomotiff float32 -j 2", tools["nxs2tiff"], args)


def naive_row(volume: Volume, outdir: Path, out_dtype: str) -> Row:
    """naive.py under this interpreter, so it uses the same numpy, h5py and tifffile as tomotiff."""
    spec = volume.spec
    argv = [sys.executable, str(NAIVE), str(volume.path), str(outdir)]
    argv += ["--pattern", TIFF_PATTERN] if spec.dataset is None else ["-d", spec.dataset, "-i", str(spec.axis)]
    if out_dtype == "uint8":
        argv += window_args(volume)
    if spec.compression:
        argv.append("--hdf5plugin")
    return Row(f"naive-{short(out_dtype)}", f"naive loop {out_dtype}", argv)


def ceiling_row(volume: Volume, outdir: Path, out_dtype: str) -> Row:
    """ceiling.py writing exactly the bytes the `out_dtype` output would hold."""
    argv = [
        sys.executable,
        str(CEILING),
        "--images",
        str(volume.images),
        "--output-bytes",
        str(volume.nbytes(out_dtype)),
        str(outdir),
        *map(str, volume.files()),
    ]
    return Row(f"ceiling-{short(out_dtype)}", f"I/O ceiling {out_dtype}", argv)


def peer_row(volume: Volume, peer: Tool, link: Path | None, outdir: Path) -> Row:
    """nabu-cast with the same window as tomotiff (given explicitly, so it does not compute a histogram)."""
    lo, hi = volume.spec.window
    args = [
        f"hdf5:volume:{link}?path=entry",
        "--output-data-type",
        "uint8",
        "--output_volume",
        f"tiff:volume:{outdir}?file_prefix=nabu",
        f"--data_min={lo:g}",
        f"--data_max={hi:g}",
        "--overwrite",
    ]
    return row_for("peer-u8", "nabu-cast uint8", peer, args)


def case_rows(volume: Volume, tools: dict[str, Tool], peer: Tool, link: Path | None, outdir: Path) -> list[Row]:
    """tomotiff rows first, then the naive loop, the ceiling and the peer, in round-robin order
    (hot rows: measure.with_cold adds their cold twins). `link` is the file volumes.py wrote for
    nabu-cast (None when nabu-cast is not available)."""
    spec = volume.spec
    rows = [tomotiff_u8_row(volume, tools, outdir, 2)]
    if spec.one_worker:
        rows.append(tomotiff_u8_row(volume, tools, outdir, 1))
    if spec.startup:
        rows.append(startup_row(volume, tools, outdir))
    if spec.float32_out:
        rows.append(tomotiff_fp_row(volume, tools, outdir))
    out_dtypes = ["uint8", "float32"] if spec.float32_out else ["uint8"]
    rows += [naive_row(volume, outdir, d) for d in out_dtypes]
    rows += [ceiling_row(volume, outdir, d) for d in out_dtypes]
    if spec.peer:
        rows.append(peer_row(volume, peer, link, outdir))
    return rows


def short(dtype: str) -> str:
    return {"uint8": "u8", "float32": "fp"}[dtype]
