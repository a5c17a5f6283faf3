"""How long Snakemake takes to plan a large batch: 200 scans x 2 bit depths x 8 shards.

Targets (issue "Fast and lean"): a dry run (`snakemake -n`) under 10 s, and a no-op rerun
(dry and real) under 10 s. The scans are tiny real HDF5 files (the plan does not depend on
image size). For the no-op timings, empty files stand in for a finished batch's outputs,
written in the order the jobs would write them, with its 204,800 TIFF names (the workflow
lists them to notice deleted images).

    python benchmarks/workflow_dryrun.py [--scans 200] [--workdir DIR]
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOW = ["Snakefile", "config", "rules", "scripts", "envs", "profiles", "report"]
SHARD_SIZE, SHARDS = 64, 8
TARGET_SECONDS = 10.0


def make_batch(root: Path, scans: int) -> None:
    """A copy of the workflow and a batch of ``scans`` tiny volumes with a known range."""
    for name in WORKFLOW:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    (root / "data").mkdir()
    for scan in range(scans):
        with h5py.File(root / "data" / f"{scan}.nxs", "w") as file:
            file.create_dataset("data", (SHARD_SIZE * SHARDS, 2, 2), np.float32)
    config = {
        "defaults": {"bits": [8, 16], "shard_size": SHARD_SIZE, "window": {"lo": 0, "hi": 1}},
        "scans": [
            {"id": f"0-{scans - 1}", "input": "data/{scan}.nxs", "dataset": "/data", "stop": SHARD_SIZE * SHARDS}
        ],
    }
    (root / "batch.yaml").write_text(yaml.safe_dump(config))


def finished_batch(root: Path, scans: int) -> None:
    """Every output of the batch, as empty files in job order (so each is newer than its inputs)."""
    depths = ("u8", "u16")
    for stage in ("windows", "stats", "shards", "manifests"):
        for scan in range(scans):
            results = root / "results" / str(scan)
            for depth in depths:
                if stage == "windows":
                    (results / ".work" / depth).mkdir(parents=True, exist_ok=True)
                    (results / ".work" / f"window-{depth}.json").touch()
                elif stage == "shards":
                    (results / depth).mkdir(parents=True, exist_ok=True)
                    for index in range(SHARD_SIZE * SHARDS):
                        (results / depth / f"{scan}_{index:05d}.tif").touch()
                    for first in range(0, SHARD_SIZE * SHARDS, SHARD_SIZE):
                        (results / ".work" / depth / f"{first:05d}-{first + SHARD_SIZE - 1:05d}.json").touch()
                elif stage == "manifests":
                    (results / depth / "manifest.json").touch()
            if stage == "stats":
                (results / "stats.json").touch()
        time.sleep(0.05)  # distinct modification times between stages


def timed(root: Path, *args: str) -> float:
    command = [sys.executable, "-m", "snakemake", "--configfile", "batch.yaml", *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        # Snakemake prints a workflow's error on stdout, its profile notice on stderr
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=200)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="tomotiff-dryrun-", dir=args.workdir))
    try:
        make_batch(root, args.scans)
        rows = [("dry run of the new batch", timed(root, "-n", "--quiet", "rules"))]
        finished_batch(root, args.scans)
        rows.append(("no-op dry run", timed(root, "-n", "--quiet", "rules")))
        rows.append(("no-op real run", timed(root, "--cores", "2", "--quiet", "rules")))
    finally:
        shutil.rmtree(root)
    print(f"| step ({args.scans} scans x 2 bit depths x {SHARDS} shards) | seconds | target < {TARGET_SECONDS:g} s |")
    print("| --- | ---: | --- |")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.1f} | {'PASS' if seconds < TARGET_SECONDS else 'FAIL'} |")


if __name__ == "__main__":
    main()
