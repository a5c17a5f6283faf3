"""Benchmark tomotiff against a naive per-image loop, the I/O ceiling and nabu-cast.

For each case it writes a volume (volumes.py, in its own process), times every command as
its own subprocess (wall time, CPU time and peak RSS of that command alone, from os.wait4),
and prints a Markdown report with PASS/FAIL for the project's performance targets. It
installs nothing: a missing program is reported as not available. See benchmarks/README.md.

    python benchmarks/bench.py [--scale S] [--workdir DIR] [--repeats N]
                               [--json OUT] [--cases A,B,C,D] [--tomotiff-bin DIR]

The modules: cases.py (what is measured), volumes.py (writes the inputs), commands.py (the
command lines), measure.py (running them), report.py (ratios, targets, Markdown, JSON),
machine.py (the machine section).
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

from cases import CASES, CaseSpec, Volume, disk_needed, scaled_images, volume_for
from commands import PEER, TOMOTIFF_TOOLS, Tool, case_rows, find_peer, find_tool, tomotiff_u8_row
from machine import load_average, machine
from measure import MB, CaseResult, Row, log, measure

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
    measure(rows, repeats, outdir, volume.images)
    return CaseResult(name, volume.spec.description, volume.images, volume.input_bytes, rows)


def run_case(
    spec: CaseSpec, images: int, repeats: int, root: Path, tools: dict[str, Tool], peer: Tool
) -> list[CaseResult]:
    """Measure one case, then (for A and C) tomotiff alone on twice the images, one input on disk at a time."""
    outdir = root / "out"
    volume = volume_for(spec, images, root)
    link = root / f"nabu_link_{spec.name}.h5" if spec.peer and peer.path else None
    generate(volume, link)
    results = [measured(spec.name, volume, case_rows(volume, tools, peer, link, outdir), repeats, outdir)]
    remove(volume.path)
    if spec.scaling:
        doubled = volume_for(spec, 2 * images, root)
        row = tomotiff_u8_row(doubled, tools, outdir, 2)
        if row.argv is not None:  # without tomotiff, writing the doubled volume would be wasted time
            generate(doubled, None)
        results.append(measured(f"{spec.name}-2x", doubled, [row], repeats, outdir))
        if row.argv is not None:
            remove(doubled.path)
    return results


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
    specs = [CASES[c] for c in args.cases]
    args.workdir.mkdir(parents=True, exist_ok=True)
    needed, free = disk_needed(specs, args.scale), shutil.disk_usage(args.workdir).free
    if needed > free:
        sys.exit(f"need about {needed / 1e9:.1f} GB free in {args.workdir}, have {free / 1e9:.1f} GB")
    tools = {name: find_tool(name, args.tomotiff_bin) for name in TOMOTIFF_TOOLS}
    peer = find_peer() if any(spec.peer for spec in specs) else Tool(None, "no case of this run uses it")
    info = machine(tools["nxs2tiffux"])
    root = Path(tempfile.mkdtemp(prefix="tomotiff-bench-", dir=args.workdir))
    try:
        results = [
            r
            for spec in specs
            for r in run_case(spec, scaled_images(spec, args.scale), args.repeats, root, tools, peer)
        ]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    info["load average at end"] = load_average()
    settings = {
        "scale": args.scale,
        "repeats": args.repeats,
        "cases": args.cases,
        "tools": {**{name: t.path for name, t in tools.items()}, PEER: peer.path},
    }
    report = build(results, info, settings)
    print(markdown(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    log(f"done in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
