"""Benchmark tomotiff against a naive per-image loop, the I/O ceiling and nabu-cast.

For each case it writes a volume (volumes.py, in its own process), times every command as
its own subprocess (wall time, CPU time and peak RSS of that command alone, from os.wait4),
with its input hot in the page cache and cold (evicted, and checked to be), and prints a
Markdown report with PASS/FAIL for the project's performance targets. It installs nothing:
a missing program is reported as not available. See benchmarks/README.md.

    python benchmarks/bench.py [--scale S] [--workdir DIR] [--repeats N] [--json OUT]
                               [--cases A,B,C,D,C-gzip,C-bslz4,C-blosc|none] [--no-cold]
                               [--big [GB]] [--tomotiff-bin DIR]

The modules: cases.py (what is measured), volumes.py (writes the inputs), commands.py (the
command lines), measure.py (running them), pagecache.py (hot and cold inputs), report.py
(ratios, targets, Markdown, JSON), machine.py (the machine section).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cases import (
    BIG,
    CASES,
    CaseSpec,
    Volume,
    big_bytes,
    big_disk_needed,
    big_images,
    case_named,
    disk_needed,
    scaled_images,
    volume_for,
)
from commands import PEER, TOMOTIFF_TOOLS, Tool, case_rows, find_peer, find_tool, tomotiff_u8_row
from machine import load_average, machine, ram_bytes
from measure import MB, CaseResult, Row, cold_twin, log, measure, with_cold

from report import build, markdown

VOLUMES = Path(__file__).resolve().parent / "volumes.py"


def generate(volume: Volume, link: Path | None) -> None:
    """Write the volume (and nabu-cast's link to it) and flush, so no write-back of the input
    overlaps the timed runs."""
    started = time.perf_counter()
    argv = [sys.executable, str(VOLUMES), volume.spec.name, str(volume.images), str(volume.path)]
    subprocess.run(argv + (["--link", str(link)] if link else []), check=True)
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


def measured(name: str, volume: Volume, rows: list[Row], repeats: int, outdir: Path) -> CaseResult:
    """Run the rows on the volume (if it was written) and record its size on disk beside its pixels'."""
    files = volume.files() if volume.path.exists() else []
    measure(rows, repeats, outdir, volume.images, files)
    file_bytes = sum(p.stat().st_size for p in files) or None
    return CaseResult(name, volume.spec.description, volume.images, volume.input_bytes, rows, file_bytes)


def run_case(
    spec: CaseSpec, images: int, repeats: int, root: Path, tools: dict[str, Tool], peer: Tool, cold: bool
) -> list[CaseResult]:
    """Measure one case, then (for A, C and C-gzip) tomotiff alone on twice the images, one input
    on disk at a time. With `cold`, every command also runs with its input evicted."""
    outdir = root / "out"
    both = with_cold if cold else list
    volume = volume_for(spec, images, root)
    link = root / f"nabu_link_{spec.name}.h5" if spec.peer and peer.path else None
    generate(volume, link)
    results = [measured(spec.name, volume, both(case_rows(volume, tools, peer, link, outdir)), repeats, outdir)]
    remove(volume.path)
    if spec.scaling:
        doubled = volume_for(spec, 2 * images, root)
        row = tomotiff_u8_row(doubled, tools, outdir, 2)
        if row.argv is not None:  # without tomotiff, writing the doubled volume would be wasted time
            generate(doubled, None)
        results.append(measured(f"{spec.name}-2x", doubled, both([row]), repeats, outdir))
        if row.argv is not None:
            remove(doubled.path)
    return results


def run_big(images: int, root: Path, tools: dict[str, Tool]) -> CaseResult:
    """--big: tomotiff once on a volume larger than memory, cold (evicted, and most of it could not
    be cached anyway); its throughput and peak RSS. The volume is removed afterwards."""
    outdir = root / "out"
    volume = volume_for(BIG, images, root)
    row = cold_twin(tomotiff_u8_row(volume, tools, outdir, 2))
    if row.argv is not None:
        if volume.input_bytes <= ram_bytes():
            log(f"case BIG: {volume.input_bytes / 1e9:.1f} GB is not larger than this machine's RAM")
        generate(volume, None)
    result = measured(BIG.name, volume, [row], 1, outdir)
    if volume.path.exists():
        remove(volume.path)
    return result


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
    parser.add_argument(
        "--cases", default=",".join(CASES), help=f"comma-separated subset of {','.join(CASES)}, or none; default all"
    )
    parser.add_argument(
        "--cold",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run every command with its input evicted from the page cache (default); --no-cold: hot only",
    )
    parser.add_argument(
        "--big",
        type=float,
        nargs="?",
        const=32.0,
        metavar="GB",
        help="also run tomotiff once on a float32 Savu-like volume of GB (default 32) gigabytes, larger than RAM",
    )
    parser.add_argument("--tomotiff-bin", type=Path, help="directory holding the tomotiff commands; default: PATH")
    args = parser.parse_args()
    names = [c for c in args.cases.split(",") if c.strip() and c.strip().lower() != "none"]
    unknown = [c for c in names if case_named(c) is None]
    if unknown:
        parser.error(f"unknown case(s) {','.join(unknown)}; choose from {','.join(CASES)}, or none")
    args.cases = [case_named(c).name for c in names]
    if args.repeats < 1 or args.scale <= 0 or (args.big is not None and args.big <= 0):
        parser.error("--repeats must be >= 1, --scale > 0 and --big > 0")
    return args


def check_disk(workdir: Path, specs: list[CaseSpec], scale: float, big: int | None) -> None:
    """Refuse, in one line, a run that would fill the disk, before writing anything."""
    free = shutil.disk_usage(workdir).free
    if big is not None and big_disk_needed(big) > free:
        sys.exit(
            f"--big needs about {big_disk_needed(big) / 1e9:.1f} GB free in {workdir} "
            f"(the volume and its uint8 output), have {free / 1e9:.1f} GB"
        )
    needed = disk_needed(specs, scale)
    if needed > free:
        sys.exit(f"need about {needed / 1e9:.1f} GB free in {workdir}, have {free / 1e9:.1f} GB")


def main() -> None:
    args = parse_args()
    started = time.perf_counter()
    specs = [CASES[c] for c in args.cases]
    big = None if args.big is None else big_images(args.big)
    args.workdir.mkdir(parents=True, exist_ok=True)
    check_disk(args.workdir, specs, args.scale, big)
    tools = {name: find_tool(name, args.tomotiff_bin) for name in TOMOTIFF_TOOLS}
    peer = find_peer() if any(spec.peer for spec in specs) else Tool(None, "no case of this run uses it")
    info = machine(tools["nxs2tiffux"])
    root = Path(tempfile.mkdtemp(prefix="tomotiff-bench-", dir=args.workdir))
    try:
        results = [
            r
            for spec in specs
            for r in run_case(spec, scaled_images(spec, args.scale), args.repeats, root, tools, peer, args.cold)
        ]
        if big is not None:
            results.append(run_big(big, root, tools))
    finally:
        shutil.rmtree(root, ignore_errors=True)
    info["load average at end"] = load_average()
    settings = {
        "scale": args.scale,
        "repeats": args.repeats,
        "cases": args.cases,
        "cold": args.cold,
        "big_gb": None if big is None else big_bytes(big) / 1e9,
        "tools": {**{name: t.path for name, t in tools.items()}, PEER: peer.path},
    }
    report = build(results, info, settings)
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    log(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
