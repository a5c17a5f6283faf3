"""Run each command as its own process and record its wall time, CPU time and peak RSS.

The figures come from os.wait4: the kernel's account of that one child (and any children it
waited for), the same numbers GNU time prints, without needing GNU time. ru_maxrss has one
catch: the child starts inside its parent's memory (posix_spawn is vfork, then exec), and at
exec Linux folds the peak RSS of the memory it leaves into the child's. So a child's peak
reads as max(our peak, its own). Hence this process stays small (standard library only,
volumes written by another process), and a sample no higher than our peak is refused, not
recorded: above it, the figure is the child's own.

A command runs hot (its input read through into the page cache first) and, unless bench.py is
told --no-cold, cold (its input evicted first): two rows with the same key. pagecache.py does
both, and a run whose input is not as its row says is refused, as a low peak RSS is.
"""

from __future__ import annotations

import dataclasses
import os
import select
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path

from pagecache import cache_status, prepare

MB = 1e6  # report units are decimal megabytes
TIMEOUT_S = 1800  # one run of one command; far above any expected time at scale 1


@dataclasses.dataclass
class Row:
    """One command of a case and its measurements; argv is None when the program is not available."""

    key: str  # stable id used by ratios and targets, e.g. "tomotiff-u8-j2"
    label: str
    argv: list[str] | None
    status: str = "ok"
    images: int | None = None  # images it writes, when not the whole volume
    cache: str = "hot"  # "hot": input in the page cache before each run; "cold": evicted before each run
    times: list[float] = dataclasses.field(default_factory=list)
    rss_kib: list[int] = dataclasses.field(default_factory=list)
    user_s: list[float] = dataclasses.field(default_factory=list)  # CPU seconds in the program itself
    sys_s: list[float] = dataclasses.field(default_factory=list)  # CPU seconds in the kernel on its behalf
    resident: list[float] = dataclasses.field(default_factory=list)  # input's share in the page cache before each run

    @property
    def median_s(self) -> float | None:
        return self.median_of(self.times)

    def median_of(self, values: list[float]) -> float | None:
        """The median, or None unless every run succeeded: a failed row has no figure."""
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
    file_bytes: int | None = None  # the input's size on disk (less than input_bytes when compressed)

    def row(self, key: str, cache: str = "hot") -> Row | None:
        return next((r for r in self.rows if r.key == key and r.cache == cache), None)


@dataclasses.dataclass(frozen=True)
class Run:
    """What the kernel says of one finished child."""

    exit_code: int
    timed_out: bool
    wall_s: float
    rss_kib: int
    user_s: float
    sys_s: float


def run_command(argv: list[str], stderr: Path, timeout: float) -> Run:
    """Spawn `argv` in a session of its own (stdout discarded, stderr to a file, which cannot fill
    up and block it as a pipe could), wait for it and read its rusage. On timeout the whole
    session is killed, so no grandchild lingers."""
    with open(os.devnull, "rb") as null_in, open(os.devnull, "wb") as null_out, open(stderr, "wb") as err:
        actions = [(os.POSIX_SPAWN_DUP2, f.fileno(), fd) for f, fd in ((null_in, 0), (null_out, 1), (err, 2))]
        started = time.perf_counter()
        pid = os.posix_spawnp(argv[0], argv, os.environ, file_actions=actions, setsid=True)
    exited = os.pidfd_open(pid)
    try:
        ready, _, _ = select.select([exited], [], [], timeout)
    finally:
        os.close(exited)
    if not ready:
        os.killpg(pid, signal.SIGKILL)  # safe: the unreaped child still holds its pid and group
    _, status, usage = os.wait4(pid, 0)
    wall_s = time.perf_counter() - started
    return Run(os.waitstatus_to_exitcode(status), not ready, wall_s, usage.ru_maxrss, usage.ru_utime, usage.ru_stime)


def own_peak_kib() -> int:
    """The high-water RSS of this process's memory (VmHWM): what exec folds into a child's ru_maxrss,
    so the floor under every child's figure. Not getrusage(RUSAGE_SELF), which holds what our own
    parent folded into us the same way (pytest's peak, when a test runs the benchmark)."""
    status = Path("/proc/self/status").read_text().splitlines()
    return int(next(line.split()[1] for line in status if line.startswith("VmHWM:")))


def empty_dir(path: Path) -> None:
    """Delete the previous output and flush, so every run starts with no pending write-back."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    os.sync()


def judge(run: Run, written: int, images: int, stderr: str) -> str:
    """'ok', or why the run gives no figure."""
    if run.timed_out:
        return f"timeout after {TIMEOUT_S} s"
    if run.exit_code:
        return f"failed (exit {run.exit_code}): {last_line(stderr)}"
    if written < images:
        return f"wrote {written} files for {images} images"
    floor = own_peak_kib()
    if run.rss_kib <= floor:
        return f"peak RSS not above the benchmark's own {floor * 1024 / MB:.0f} MB: not measurable"
    return "ok"


def cold_twin(row: Row) -> Row:
    """The same command, to be run with its input evicted from the page cache (no figures yet)."""
    return Row(row.key, row.label, row.argv, row.status, row.images, cache="cold")


def with_cold(rows: list[Row]) -> list[Row]:
    """Each row followed by its cold twin: the round-robin then alternates hot and cold runs, and a
    cold run leaves the input read back into the cache for the next command's hot run."""
    return [r for row in rows for r in (row, cold_twin(row))]


def run_once(row: Row, outdir: Path, images: int, inputs: list[Path]) -> None:
    """Time one run into an empty `outdir`, its input first made hot or cold as the row says;
    record its figures, or why it has none."""
    empty_dir(outdir)
    fraction = prepare(row.cache, inputs)
    row.status = cache_status(row.cache, fraction)
    if row.status != "ok":
        log(f"  {row.label} ({row.cache}): {row.status}")
        return
    stderr = outdir.parent / "stderr.txt"
    run = run_command(row.argv, stderr, TIMEOUT_S)
    written = sum(1 for p in outdir.rglob("*") if p.is_file())
    row.status = judge(run, written, images, stderr.read_text(errors="replace"))
    if row.status == "ok":
        row.times.append(run.wall_s)
        row.rss_kib.append(run.rss_kib)
        row.user_s.append(run.user_s)
        row.sys_s.append(run.sys_s)
        row.resident.append(fraction)
    state = f"{row.cache}, {fraction:.1%} resident"
    log(f"  {row.label} ({state}): {run.wall_s:.2f} s {row.status if row.status != 'ok' else ''}")


def measure(rows: list[Row], repeats: int, outdir: Path, images: int, inputs: list[Path]) -> None:
    """Round-robin over the rows, so drift on a shared machine hits every command alike.
    A row that fails once is not run again."""
    for _ in range(repeats):
        for row in rows:
            if row.argv is not None and row.status == "ok":
                run_once(row, outdir, row.images or images, inputs)
    shutil.rmtree(outdir, ignore_errors=True)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else ""
