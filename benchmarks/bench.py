"""Benchmark tomotiff against a naive per-image loop, the I/O ceiling and nabu-cast.

It generates its own volumes in the layouts tomotiff meets in practice, times
every command as its own subprocess under /usr/bin/time (wall time and peak
RSS of that command alone), and prints a Markdown report with PASS/FAIL for
the project's performance targets. See benchmarks/README.md.

    python benchmarks/bench.py [--scale S] [--workdir DIR] [--repeats N]
                               [--json OUT] [--cases A,B,C,D] [--tomotiff-bin DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib.metadata
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import tifffile

HERE = Path(__file__).resolve().parent
NAIVE = HERE / "naive.py"
CEILING = HERE / "ceiling.py"
TIME_BIN = "/usr/bin/time"
TOMOTIFF_TOOLS = ("nxs2tiffux", "nxs2tiff", "tiff2tiffux")
TIFF_PATTERN = "recon_%05d.tif"
MB = 1e6  # report units are decimal megabytes
BLOCK_BYTES = 128 << 20  # generation block: small next to RAM, large enough for fast HDF5 writes
MIN_IMAGES = 4  # so that two workers still have work at tiny scales
TIMEOUT_S = 1800  # one run of one command; far above any expected time at scale 1
RSS_LIMIT_MB = 400.0
RSS_SCALING_TOLERANCE = 0.10
RECON_WINDOW = (-0.0005, 0.0015)
RAW_WINDOW = (100.0, 60000.0)


@dataclasses.dataclass(frozen=True)
class CaseSpec:
    """A benchmark case at scale 1, and which extra rows it has."""

    name: str
    description: str
    images: int
    image_shape: tuple[int, int]
    dtype: str
    dataset: str | None  # None: a directory of single-page TIFFs
    axis: int
    chunks: tuple[int, int, int] | None
    window: tuple[float, float]
    one_worker: bool = False  # also time -j 1, to show what the second worker buys
    float32_out: bool = False  # also time float32 output (no conversion: pure I/O path)
    peer: bool = False  # also time nabu-cast, which only reads images along axis 0
    scaling: bool = False  # rerun tomotiff on twice the images to check memory stays flat


CASES = {
    spec.name: spec
    for spec in (
        CaseSpec(
            name="A",
            description="Savu-like float32 recon (H, index, W), chunks (32, 32, 32), images on axis 1",
            images=256,
            image_shape=(1024, 1024),
            dtype="float32",
            dataset="/entry/final_result_tomo/data",
            axis=1,
            chunks=(32, 32, 32),
            window=RECON_WINDOW,
            scaling=True,
        ),
        CaseSpec(
            name="B",
            description="float32 recon (index, H, W), contiguous, images on axis 0",
            images=128,
            image_shape=(2048, 2048),
            dtype="float32",
            dataset="/entry/final_result_tomo/data",
            axis=0,
            chunks=None,
            window=RECON_WINDOW,
            one_worker=True,
            float32_out=True,
            peer=True,
        ),
        CaseSpec(
            name="C",
            description="uint16 raw projections (index, H, W), one chunk per image",
            images=256,
            image_shape=(2048, 2048),
            dtype="uint16",
            dataset="/entry1/instrument/pco1_hw_hdf/data",
            axis=0,
            chunks=(1, 2048, 2048),
            window=RAW_WINDOW,
            peer=True,
            scaling=True,
        ),
        CaseSpec(
            name="D",
            description="directory of float32 2048x2048 single-page TIFFs",
            images=128,
            image_shape=(2048, 2048),
            dtype="float32",
            dataset=None,
            axis=0,
            chunks=None,
            window=RECON_WINDOW,
        ),
    )
}


@dataclasses.dataclass(frozen=True)
class Volume:
    """A generated input on disk: an HDF5 file or a TIFF directory."""

    spec: CaseSpec
    path: Path
    images: int

    def nbytes(self, dtype: str) -> int:
        """Bytes of all images in `dtype`: input size, or the size of an output."""
        height, width = self.spec.image_shape
        return self.images * height * width * np.dtype(dtype).itemsize

    @property
    def input_bytes(self) -> int:
        return self.nbytes(self.spec.dtype)

    def files(self) -> list[Path]:
        """The input files, in the order a sequential reader would take them."""
        return sorted(self.path.iterdir()) if self.spec.dataset is None else [self.path]


@dataclasses.dataclass
class Row:
    """One command of a case and its measurements; argv is None when the program is missing."""

    key: str  # stable id used by ratios and targets, e.g. "tomotiff-u8-j2"
    label: str
    argv: list[str] | None
    status: str = "ok"
    images: int | None = None  # images it writes, when not the whole volume
    times: list[float] = dataclasses.field(default_factory=list)
    rss_kib: list[int] = dataclasses.field(default_factory=list)
    user_s: list[float] = dataclasses.field(default_factory=list)  # CPU seconds in the program itself
    sys_s: list[float] = dataclasses.field(default_factory=list)  # CPU seconds in the kernel on its behalf

    @property
    def median_s(self) -> float | None:
        return self.median_of(self.times)

    def median_of(self, values: list[float]) -> float | None:
        return statistics.median(values) if values and self.status == "ok" else None

    @property
    def peak_rss_mb(self) -> float | None:
        return max(self.rss_kib) * 1024 / MB if self.rss_kib else None


@dataclasses.dataclass
class CaseResult:
    """All rows measured on one volume."""

    name: str
    description: str
    images: int
    input_bytes: int
    rows: list[Row]

    def row(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.key == key), None)


# ---------------------------------------------------------------- generation


@dataclasses.dataclass(frozen=True)
class Content:
    """Image i = start + w(i) * delta + noise, clipped: smooth images drifting with the index.

    The noise is a slice of a fixed random bank at a random offset, so a voxel
    costs three vector operations instead of a fresh normal draw, which would
    make generation slower than most of the commands being measured.
    """

    start: np.ndarray
    delta: np.ndarray
    noise: np.ndarray  # 1-D, already scaled
    clip: tuple[float, float] | None


def soft_ellipse(x: np.ndarray, y: np.ndarray, centre: np.ndarray, radii: np.ndarray) -> np.ndarray:
    """An ellipse with a logistic edge a few pixels wide, like a blurred material boundary."""
    r2 = ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2
    return 1 / (1 + np.exp(np.minimum(20 * (r2 - 1), 50)))


def phantom(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A cylinder holding denser and lighter inclusions, values in [-0.3, 1]."""
    y = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :]
    image = 0.6 * soft_ellipse(x, y, np.zeros(2), np.full(2, 0.85))
    for _ in range(12):
        image += rng.uniform(-0.3, 0.4) * soft_ellipse(x, y, rng.uniform(-0.5, 0.5, 2), rng.uniform(0.05, 0.3, 2))
    return np.clip(image, -0.3, 1).astype(np.float32)


def make_content(spec: CaseSpec, rng: np.random.Generator) -> Content:
    """Reconstructions: attenuation about [-0.002, 0.002]; raw: transmitted counts in [100, 60000]."""
    first, last = phantom(spec.image_shape, rng), phantom(spec.image_shape, rng)
    bank = rng.standard_normal(3 * first.size, dtype=np.float32)
    if spec.dtype == "uint16":
        first, last = (300 + 57000 * np.exp(-4 * np.maximum(p, 0)) for p in (first, last))
        bank *= 150  # about sqrt(mean counts): photon noise
        clip = RAW_WINDOW
    else:
        first, last = 0.0015 * first, 0.0015 * last
        bank *= 0.0002
        clip = None
    return Content(first.astype(np.float32), (last - first).astype(np.float32), bank, clip)


def render(content: Content, weight: float, offset: int, out: np.ndarray, work: np.ndarray) -> None:
    """Write one image into `out`, computing in float32 `work` (which may be `out` itself)."""
    np.multiply(content.delta, weight, out=work)
    work += content.start
    work += content.noise[offset : offset + work.size].reshape(work.shape)
    if content.clip:
        np.clip(work, *content.clip, out=work)
    if out is not work:
        np.copyto(out, work, casting="unsafe")


def image_blocks(spec: CaseSpec, images: int) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first index, images) in reused ~128 MiB blocks, so generation memory stays flat.

    A's 32-image blocks line up with its (32, 32, 32) chunks, so no chunk is written twice.
    """
    rng = np.random.default_rng(ord(spec.name))
    content = make_content(spec, rng)
    per_block = max(1, BLOCK_BYTES // (content.start.nbytes))
    block = np.empty((min(per_block, images), *spec.image_shape), dtype=spec.dtype)
    work = np.empty(spec.image_shape, dtype=np.float32)
    span = content.noise.size - content.start.size
    for first in range(0, images, per_block):
        count = min(per_block, images - first)
        for j in range(count):
            weight = 0.5 - 0.5 * np.cos(np.pi * (first + j) / max(images - 1, 1))
            image = block[j]
            render(content, weight, int(rng.integers(span)), image, image if spec.dtype == "float32" else work)
        yield first, block[:count]


def chunk_shape(spec: CaseSpec, shape: tuple[int, int, int]) -> tuple[int, int, int] | None:
    """The case's chunks, shrunk where a small-scale volume is thinner than a chunk."""
    return None if spec.chunks is None else tuple(min(c, s) for c, s in zip(spec.chunks, shape))


def write_hdf5(spec: CaseSpec, images: int, path: Path) -> None:
    """Write with h5py defaults (no compression, default libver), as Savu and the detectors do."""
    height, width = spec.image_shape
    shape = (images, height, width) if spec.axis == 0 else (height, images, width)
    with h5py.File(path, "w") as f:
        dset = f.create_dataset(spec.dataset, shape=shape, dtype=spec.dtype, chunks=chunk_shape(spec, shape))
        for first, block in image_blocks(spec, images):
            if spec.axis == 0:
                dset[first : first + len(block)] = block
            else:
                dset[:, first : first + len(block), :] = block.transpose(1, 0, 2)


def write_tiff_dir(spec: CaseSpec, images: int, path: Path) -> None:
    """One uncompressed single-page TIFF per image, as reconstruction pipelines write them."""
    path.mkdir()
    for first, block in image_blocks(spec, images):
        for j, image in enumerate(block):
            tifffile.imwrite(path / (TIFF_PATTERN % (first + j)), image)


def volume_for(spec: CaseSpec, images: int, root: Path) -> Volume:
    """Where the case's input goes; separate from generate() so a row can be built before any data exists."""
    suffix = "" if spec.dataset is None else ".h5"
    return Volume(spec, root / f"{spec.name}_{images}{suffix}", images)


def generate(volume: Volume) -> None:
    """Write the volume and flush it, so no write-back of the input overlaps the timed runs."""
    started = time.perf_counter()
    if volume.spec.dataset is None:
        write_tiff_dir(volume.spec, volume.images, volume.path)
    else:
        write_hdf5(volume.spec, volume.images, volume.path)
    os.sync()
    log(
        f"case {volume.spec.name}: generated {volume.images} images, {volume.input_bytes / MB:.0f} MB "
        f"in {time.perf_counter() - started:.0f} s"
    )


def remove(path: Path) -> None:
    """Free the disk before the next volume: only one case's input exists at a time."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


def write_peer_link(volume: Volume, root: Path) -> Path:
    """nabu-cast reads `<entry>/results/data`; an external link points that at the case's dataset."""
    link = root / f"nabu_link_{volume.spec.name}.h5"
    with h5py.File(link, "w") as f:
        f["/entry/results/data"] = h5py.ExternalLink(str(volume.path.resolve()), volume.spec.dataset)
    return link


# ---------------------------------------------------------------- commands


def find_tool(name: str, bin_dir: Path | None) -> str | None:
    """Look in `bin_dir` if given, else next to this interpreter (an unactivated venv) and on PATH."""
    search = (
        str(bin_dir) if bin_dir else os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    return shutil.which(name, path=search)


def find_peer() -> str | None:
    """nabu-cast if it runs; otherwise try `pip install nabu` once into this environment."""
    tool = find_tool("nabu-cast", None)
    if tool is None:
        log("nabu-cast not found: trying pip install nabu")
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "nabu"],
            check=False,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        )
        if proc.returncode:
            log(f"pip install nabu failed: {last_line(proc.stderr)}")
            return None
        tool = find_tool("nabu-cast", None)
    if tool is None or subprocess.run([tool, "--help"], check=False, capture_output=True).returncode:
        return None
    return tool


def window_args(spec: CaseSpec) -> list[str]:
    """`--lo=` form, so a negative bound is never mistaken for an option."""
    lo, hi = spec.window
    return [f"--lo={lo:g}", f"--hi={hi:g}"]


def tomotiff_row(key: str, label: str, tool: str | None, args: list[str]) -> Row:
    """A tomotiff command, or a 'not installed' row so the report still lists what was not measured."""
    if tool is None:
        return Row(key, label, None, status="not installed")
    return Row(key, label, [tool, *args])


def tomotiff_u8_row(volume: Volume, tools: dict[str, str | None], outdir: Path, jobs: int) -> Row:
    """The command a user would type for this case: nxs2tiffux for HDF5, tiff2tiffux for a TIFF directory."""
    spec = volume.spec
    key, label = f"tomotiff-u8-j{jobs}", f"tomotiff uint8 -j {jobs}"
    common = ["-u", "8", *window_args(spec), "-j", str(jobs), str(volume.path), str(outdir)]
    if spec.dataset is None:
        return tomotiff_row(key, label, tools["tiff2tiffux"], ["-q", "-i", TIFF_PATTERN, *common])
    return tomotiff_row(key, label, tools["nxs2tiffux"], ["-q", "-d", spec.dataset, "-i", str(spec.axis), *common])


def startup_row(volume: Volume, tools: dict[str, str | None], outdir: Path) -> Row:
    """The one-worker command on the first image only: what every run pays before and after its work
    (interpreter, imports, opening the file, exit), measured beside the full runs."""
    full = tomotiff_u8_row(volume, tools, outdir, 1)
    argv = None if full.argv is None else [*full.argv, "-s", "1"]
    return Row("tomotiff-u8-start", "tomotiff uint8, first image only", argv, full.status, images=1)


def naive_row(volume: Volume, outdir: Path, out_dtype: str) -> Row:
    """naive.py under this interpreter, so it uses the same numpy, h5py and tifffile as tomotiff."""
    spec = volume.spec
    argv = [sys.executable, str(NAIVE), str(volume.path), str(outdir)]
    argv += ["--pattern", TIFF_PATTERN] if spec.dataset is None else ["-d", spec.dataset, "-i", str(spec.axis)]
    if out_dtype == "uint8":
        argv += window_args(spec)
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


def peer_row(volume: Volume, nabu: str | None, link: Path, outdir: Path) -> Row:
    """nabu-cast with the same window as tomotiff (given explicitly, so it does not compute a histogram)."""
    if nabu is None:
        return Row("peer-u8", "nabu-cast uint8", None, status="peer unavailable")
    lo, hi = volume.spec.window
    return Row(
        "peer-u8",
        "nabu-cast uint8",
        [
            nabu,
            f"hdf5:volume:{link}?path=entry",
            "--output-data-type",
            "uint8",
            "--output_volume",
            f"tiff:volume:{outdir}?file_prefix=nabu",
            f"--data_min={lo:g}",
            f"--data_max={hi:g}",
            "--overwrite",
        ],
    )


def case_rows(volume: Volume, tools: dict[str, str | None], nabu: str | None, root: Path, outdir: Path) -> list[Row]:
    """tomotiff rows first, then the naive loop, the ceiling and the peer, in round-robin order."""
    spec = volume.spec
    rows = [tomotiff_u8_row(volume, tools, outdir, 2)]
    if spec.one_worker:
        rows += [tomotiff_u8_row(volume, tools, outdir, 1), startup_row(volume, tools, outdir)]
    if spec.float32_out:
        rows.append(
            tomotiff_row(
                "tomotiff-fp-j2",
                "tomotiff float32 -j 2",
                tools["nxs2tiff"],
                ["-q", "--fp", "-d", spec.dataset, "-i", str(spec.axis), "-j", "2", str(volume.path), str(outdir)],
            )
        )
    out_dtypes = ["uint8", "float32"] if spec.float32_out else ["uint8"]
    rows += [naive_row(volume, outdir, d) for d in out_dtypes]
    rows += [ceiling_row(volume, outdir, d) for d in out_dtypes]
    if spec.peer:
        rows.append(peer_row(volume, nabu, write_peer_link(volume, root), outdir))
    return rows


def short(dtype: str) -> str:
    return {"uint8": "u8", "float32": "fp"}[dtype]


# ---------------------------------------------------------------- measuring


def empty_dir(path: Path) -> None:
    """Delete the previous output and flush, so every run starts with no pending write-back."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    os.sync()


def run_once(row: Row, outdir: Path, images: int) -> None:
    """Time one run under /usr/bin/time; record wall time and peak RSS, or why it failed."""
    empty_dir(outdir)
    rss_file = outdir.parent / "rss.txt"
    argv = [TIME_BIN, "-f", "%M %U %S", "-o", str(rss_file), *row.argv]
    started = time.perf_counter()
    with subprocess.Popen(
        argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as proc:
        try:
            _, stderr = proc.communicate(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the whole session: the command, not just /usr/bin/time
            proc.communicate()
            row.status = f"timeout after {TIMEOUT_S} s"
            return
    elapsed = time.perf_counter() - started
    written = sum(1 for p in outdir.rglob("*") if p.is_file())
    if proc.returncode:
        row.status = f"failed (exit {proc.returncode}): {last_line(stderr)}"
    elif written < images:
        row.status = f"wrote {written} files for {images} images"
    else:
        rss_kib, user_s, sys_s = rss_file.read_text().split()[-3:]
        row.times.append(elapsed)
        row.rss_kib.append(int(rss_kib))
        row.user_s.append(float(user_s))
        row.sys_s.append(float(sys_s))
    log(f"  {row.label}: {elapsed:.2f} s {row.status if row.status != 'ok' else ''}")


def measure(volume: Volume, rows: list[Row], repeats: int, outdir: Path, name: str) -> CaseResult:
    """Round-robin over the rows, so drift on a shared machine hits every command alike."""
    for _ in range(repeats):
        for row in rows:
            if row.argv is not None and row.status == "ok":
                run_once(row, outdir, row.images or volume.images)
    shutil.rmtree(outdir, ignore_errors=True)
    return CaseResult(name, volume.spec.description, volume.images, volume.input_bytes, rows)


def run_case(
    spec: CaseSpec, images: int, repeats: int, root: Path, tools: dict[str, str | None], nabu: str | None
) -> list[CaseResult]:
    """Measure one case, then (for A and C) tomotiff alone on twice the images, one input on disk at a time."""
    outdir = root / "out"
    volume = volume_for(spec, images, root)
    generate(volume)
    results = [measure(volume, case_rows(volume, tools, nabu, root, outdir), repeats, outdir, spec.name)]
    remove(volume.path)
    if spec.scaling:
        doubled = volume_for(spec, 2 * images, root)
        row = tomotiff_u8_row(doubled, tools, outdir, 2)
        if row.argv is not None:  # without tomotiff, writing the doubled volume would be wasted time
            generate(doubled)
        results.append(measure(doubled, [row], repeats, outdir, f"{spec.name}-2x"))
        if row.argv is not None:
            remove(doubled.path)
    return results


# ---------------------------------------------------------------- reporting

RATIOS = (  # (faster row, slower row, name): speed ratio = median time of slower / median time of faster
    ("tomotiff-u8-j2", "naive-u8", "tomotiff uint8 / naive"),
    ("tomotiff-u8-j2", "ceiling-u8", "tomotiff uint8 / ceiling"),
    ("tomotiff-u8-j2", "peer-u8", "tomotiff uint8 / nabu-cast"),
    ("tomotiff-u8-j2", "tomotiff-u8-j1", "tomotiff uint8: 2 workers / 1 worker"),
    ("tomotiff-fp-j2", "naive-fp", "tomotiff float32 / naive"),
    ("tomotiff-fp-j2", "ceiling-fp", "tomotiff float32 / ceiling"),
)

SPEED_TARGETS = (  # (case, faster row, slower row, minimum speed ratio, name)
    ("A", "tomotiff-u8-j2", "naive-u8", 5.0, "A uint8 >= 5x naive"),
    ("B", "tomotiff-u8-j2", "naive-u8", 1.5, "B uint8 -j 2 >= 1.5x naive"),
    ("B", "tomotiff-u8-j2", "tomotiff-u8-j1", 1.5, "B uint8 -j 2 >= 1.5x -j 1"),
    ("B", "tomotiff-u8-j2", "ceiling-u8", 0.6, "B uint8 -j 2 >= 60% of ceiling"),
    ("B", "tomotiff-fp-j2", "ceiling-fp", 0.7, "B float32 >= 70% of ceiling"),
    ("C", "tomotiff-u8-j2", "naive-u8", 2.0, "C uint8 >= 2x naive"),
    ("D", "tomotiff-u8-j2", "naive-u8", 1.3, "D uint8 >= 1.3x naive"),
)


def speed_ratio(case: CaseResult, faster: str, slower: str) -> float | None:
    """How many times faster `faster` ran than `slower`; None if either has no measurement."""
    fast, slow = case.row(faster), case.row(slower)
    if fast is None or slow is None or fast.median_s is None or slow.median_s is None:
        return None
    return slow.median_s / fast.median_s


def workers_ratio_after_startup(case: CaseResult) -> float | None:
    """2 workers / 1 worker on the work alone: both medians less the first-image-only run's.
    A diagnostic, not a target: it shows how much of the whole commands' ratio the fixed start-up takes."""
    times = [case.row(key).median_s for key in ("tomotiff-u8-j2", "tomotiff-u8-j1", "tomotiff-u8-start")]
    if None in times or times[0] <= times[2]:
        return None
    two, one, start = times
    return (one - start) / (two - start)


def ratios(results: list[CaseResult]) -> list[dict]:
    """Every RATIOS pair present in a case, measured or not, so missing tools show as n/a."""
    pairs = [
        {"case": c.name, "ratio": name, "value": speed_ratio(c, faster, slower)}
        for c in results
        for faster, slower, name in RATIOS
        if c.row(faster) and c.row(slower)
    ]
    after_startup = [
        {"case": c.name, "ratio": "tomotiff uint8: 2 workers / 1 worker, start-up excluded",
         "value": workers_ratio_after_startup(c)}
        for c in results
        if c.row("tomotiff-u8-start")
    ]
    return pairs + after_startup


def memory_scaling(results: list[CaseResult]) -> list[dict]:
    """Peak RSS of tomotiff on twice the images over its peak RSS on the base volume."""
    by_name = {c.name: c for c in results}
    rows = []
    for name in (n for n, spec in CASES.items() if spec.scaling and n in by_name):
        base = by_name[name].row("tomotiff-u8-j2").peak_rss_mb
        doubled = by_name[f"{name}-2x"].row("tomotiff-u8-j2").peak_rss_mb
        rows.append(
            {
                "case": name,
                "rss_mb": base,
                "rss_mb_doubled": doubled,
                "ratio": doubled / base if base and doubled else None,
            }
        )
    return rows


def verdict(ok: bool | None) -> str:
    return "N/A" if ok is None else ("PASS" if ok else "FAIL")


def targets(results: list[CaseResult], scaling: list[dict]) -> list[dict]:
    """Every target whose case was run, with its measured value and PASS/FAIL/N/A."""
    by_name = {c.name: c for c in results}
    out = []
    for case, faster, slower, minimum, name in SPEED_TARGETS:
        if case in by_name:
            value = speed_ratio(by_name[case], faster, slower)
            out.append({"target": name, "value": value, "result": verdict(None if value is None else value >= minimum)})
    peaks = [r.peak_rss_mb for c in results for r in c.rows if r.key.startswith("tomotiff") and r.peak_rss_mb]
    out.append(
        {
            "target": f"peak RSS < {RSS_LIMIT_MB:.0f} MB in every tomotiff run",
            "value": max(peaks, default=None),
            "result": verdict(max(peaks) < RSS_LIMIT_MB if peaks else None),
        }
    )
    for s in scaling:
        ok = None if s["ratio"] is None else abs(s["ratio"] - 1) <= RSS_SCALING_TOLERANCE
        out.append(
            {"target": f"{s['case']} peak RSS within 10% at 2x images", "value": s["ratio"], "result": verdict(ok)}
        )
    return out


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def markdown(report: dict) -> str:
    """The report as Markdown: machine, per-command table, ratios, memory scaling, targets."""
    settings = report["settings"]
    lines = ["## Machine", ""]
    lines += [f"- {k}: {v}" for k, v in report["machine"].items()]
    lines += [
        "",
        f"## Results (scale {settings['scale']:g}, median of {settings['repeats']} runs, input warm in page cache)",
        "",
        "| case | command | images | median s | MB/s (input) | user s | sys s | peak RSS MB | status |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for case in report["cases"]:
        for row in case["rows"]:
            lines.append(
                f"| {case['case']} | {row['label']} | {row['images']} | {fmt(row['median_s'], '.2f')} | "
                f"{fmt(row['mb_per_s'], '.0f')} | {fmt(row['median_user_s'], '.2f')} | "
                f"{fmt(row['median_sys_s'], '.2f')} | {fmt(row['peak_rss_mb'], '.0f')} | {row['status']} |"
            )
    lines += [
        "",
        "## Ratios (speed: how many times faster the first ran than the second)",
        "",
        "| case | ratio | value |",
        "| --- | --- | ---: |",
    ]
    lines += [f"| {r['case']} | {r['ratio']} | {fmt(r['value'], '.2f')} |" for r in report["ratios"]]
    lines += [
        "",
        "## Memory scaling (tomotiff uint8 -j 2)",
        "",
        "| case | peak RSS MB | peak RSS MB, 2x images | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {s['case']} | {fmt(s['rss_mb'], '.0f')} | {fmt(s['rss_mb_doubled'], '.0f')} | {fmt(s['ratio'], '.2f')} |"
        for s in report["memory_scaling"]
    ]
    lines += ["", "## Targets", "", "| target | value | result |", "| --- | ---: | --- |"]
    lines += [f"| {t['target']} | {fmt(t['value'], '.2f')} | {t['result']} |" for t in report["targets"]]
    return "\n".join(lines)


def case_json(case: CaseResult) -> dict:
    """Everything measured, including each run's time and RSS, for comparing runs later."""
    return {
        "case": case.name,
        "description": case.description,
        "images": case.images,
        "input_bytes": case.input_bytes,
        "rows": [
            {
                "key": r.key,
                "label": r.label,
                "argv": r.argv,
                "status": r.status,
                "images": r.images or case.images,
                "times_s": r.times,
                "median_s": r.median_s,
                "peak_rss_mb": r.peak_rss_mb,
                "rss_mb": [k * 1024 / MB for k in r.rss_kib],
                "user_s": r.user_s,
                "sys_s": r.sys_s,
                "median_user_s": r.median_of(r.user_s),
                "median_sys_s": r.median_of(r.sys_s),
                "mb_per_s": case.input_bytes * (r.images or case.images) / case.images / MB / r.median_s
                if r.median_s else None,
            }
            for r in case.rows
        ],
    }


# ---------------------------------------------------------------- machine and setup


def package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def tomotiff_build(tool: str | None) -> str:
    """What a tomotiff command says of itself (`-V`): its version and which quantisation loop runs."""
    if tool is None:
        return "not installed"
    done = subprocess.run([tool, "-V"], capture_output=True, text=True)
    return (done.stdout or done.stderr).strip()


def machine(tool: str | None) -> dict[str, str]:
    """What the figures depend on: cores, CPU, RAM, and the versions doing the I/O."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), "unknown")
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    ram_kib = int(next(line.split()[1] for line in meminfo if line.startswith("MemTotal")))
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "ram": f"{ram_kib * 1024 / 1e9:.1f} GB",
        "kernel": platform.release(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "h5py": f"{h5py.__version__} (HDF5 {h5py.version.hdf5_version})",
        "tifffile": tifffile.__version__,
        "tomotiff": tomotiff_build(tool),
        "nabu": package_version("nabu"),
        "load average at start": load_average(),
    }


def load_average() -> str:
    """The machine is shared: a load near or above nproc means the figures include contention."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def ensure_time_binary() -> None:
    """GNU time gives the peak RSS of one command and its waited-for children."""
    if not Path(TIME_BIN).exists():
        log("installing GNU time")
        subprocess.run(["apt-get", "install", "-y", "time"], check=False, capture_output=True)
    if not Path(TIME_BIN).exists():
        sys.exit(f"{TIME_BIN} is missing and apt-get install -y time failed")


def scaled_images(spec: CaseSpec, scale: float) -> int:
    """--scale changes only the image count: per-image costs stay those of real image sizes."""
    return max(MIN_IMAGES, round(spec.images * scale))


def disk_needed(specs: list[CaseSpec], scale: float) -> int:
    """Peak disk use: one case at a time, its input plus its largest output (doubled volumes included)."""
    peak = 0
    for spec in specs:
        height, width = spec.image_shape
        images = scaled_images(spec, scale)
        factor = 2 if spec.scaling else 1
        per_image = np.dtype(spec.dtype).itemsize + (4 if spec.float32_out else 1)
        peak = max(peak, factor * images * height * width * per_image)
    return peak


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--scale",
        type=float,
        default=1.0,
        help="multiplies the number of images of every case (image size is fixed); default 1",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="a fresh temporary directory is made (and removed) inside it; default the system temp dir",
    )
    parser.add_argument("--repeats", type=int, default=3, help="runs per command; the median is reported; default 3")
    parser.add_argument("--json", type=Path, help="also write the full results as JSON here")
    parser.add_argument("--cases", default="A,B,C,D", help="comma-separated subset of A,B,C,D")
    parser.add_argument("--tomotiff-bin", type=Path, help="directory holding the tomotiff commands; default: PATH")
    args = parser.parse_args()
    args.cases = [c.strip().upper() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in args.cases if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {','.join(unknown)}; choose from {','.join(CASES)}")
    if args.repeats < 1 or args.scale <= 0:
        parser.error("--repeats must be >= 1 and --scale > 0")
    return args


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    ensure_time_binary()
    specs = [CASES[c] for c in args.cases]
    args.workdir.mkdir(parents=True, exist_ok=True)
    needed, free = disk_needed(specs, args.scale), shutil.disk_usage(args.workdir).free
    if needed > free:
        sys.exit(f"need about {needed / 1e9:.1f} GB free in {args.workdir}, have {free / 1e9:.1f} GB")
    tools = {name: find_tool(name, args.tomotiff_bin) for name in TOMOTIFF_TOOLS}
    nabu = find_peer() if any(spec.peer for spec in specs) else None
    info = machine(tools["nxs2tiffux"])
    root = Path(tempfile.mkdtemp(prefix="tomotiff-bench-", dir=args.workdir))
    try:
        results = [
            r
            for spec in specs
            for r in run_case(spec, scaled_images(spec, args.scale), args.repeats, root, tools, nabu)
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    info["load average at end"] = load_average()
    scaling = memory_scaling(results)
    report = {
        "machine": info,
        "settings": {
            "scale": args.scale,
            "repeats": args.repeats,
            "cases": args.cases,
            "tools": {**tools, "nabu-cast": nabu},
        },
        "cases": [case_json(c) for c in results],
        "ratios": ratios(results),
        "memory_scaling": scaling,
        "targets": targets(results, scaling),
    }
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    log(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
