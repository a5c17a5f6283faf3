"""Case W: what one read for every bit depth saves. A workflow scan with `bits: [8, 16, 32]` against
the same scan with `bits: [8]`, on a volume evicted from the page cache before each run: the input
its shard jobs read (Snakemake's benchmark files record each job's io_in), against the input's
size, and the wall times, in alternating runs.

Targets (issue 15): a 3-depth scan reads at most 1.2x its input; its wall time is at most 1.5x a
1-depth scan's.

    python benchmarks/workflow_reads.py [--images 256] [--repeats 3] [--workdir DIR]
"""

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from tomotiff import synthetic

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = ["Snakefile", "config", "rules", "scripts", "envs", "profiles", "report"]
SAVU = "/entry/final_result_tomo/data"


def evict(path: Path) -> None:
    """Drop the file's clean pages from the page cache (no root needed)."""
    with open(path, "rb") as handle:
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def run(root: Path, volume: Path, bits: list[int]) -> tuple[float, float]:
    """Wall seconds of one `snakemake --cores 2` over the scan, and the MB its shard jobs read."""
    for name in ("results", "logs", ".snakemake"):
        shutil.rmtree(root / name, ignore_errors=True)
    config = {
        "defaults": {"shard_size": 64, "window": {"lo": -0.0005, "hi": 0.0015}},
        "scans": [{"id": "w", "input": str(volume), "dataset": SAVU, "axis": 1, "bits": bits}],
    }
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    evict(volume)
    start = time.monotonic()
    subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2", "-q"], cwd=root, check=True, capture_output=True)
    wall = time.monotonic() - start
    read = 0.0
    for table in (root / "logs" / "benchmarks" / "w" / "shards").glob("*.tsv"):
        with open(table) as handle:
            read += sum(float(row["io_in"]) for row in csv.DictReader(handle, delimiter="\t"))
    return wall, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=256, help="images of 1024 x 1024 float32 (default 256: 1 GB)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as temporary:
        root = Path(temporary)
        for name in WORKFLOW:
            source = REPO / name
            (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
        volume = root / "w.nxs"
        synthetic.write_savu_recon(str(volume), height=1024, count=args.images, width=1024, chunks=(64, 1, 1024))
        size_mb = volume.stat().st_size / 1e6
        times: dict[str, list[float]] = {"1 depth": [], "3 depths": []}
        reads: dict[str, list[float]] = {"1 depth": [], "3 depths": []}
        for _ in range(args.repeats):  # alternating
            for name, bits in (("1 depth", [8]), ("3 depths", [8, 16, 32])):
                wall, read = run(root, volume, bits)
                times[name].append(wall)
                reads[name].append(read)
        print(f"input {size_mb:.0f} MB, {args.images} images of 1024 x 1024 float32, cold cache, {args.repeats} runs")
        print("| scan | median wall s | median shard input read, MB | read / input |")
        print("|---|---:|---:|---:|")
        for name in times:
            read = statistics.median(reads[name])
            print(f"| {name} | {statistics.median(times[name]):.2f} | {read:.0f} | {read / size_mb:.2f}x |")
        ratio = statistics.median(times["3 depths"]) / statistics.median(times["1 depth"])
        three = statistics.median(reads["3 depths"]) / size_mb
        print(
            f"\n3 depths / 1 depth wall time: {ratio:.2f}x (target <= 1.5x: {'PASS' if ratio <= 1.5 else 'FAIL'}); "
            f"3-depth read {three:.2f}x the input (target <= 1.2x: {'PASS' if three <= 1.2 else 'FAIL'})"
        )


if __name__ == "__main__":
    main()
