"""How long Snakemake takes to plan a large batch: 1,000 scans x 3 bit depths x 9 shards.

Targets (issue 15): a dry run (`snakemake -n`) of the new batch under 10 s, and a no-op rerun
(dry and real) under 10 s. The scans are tiny real HDF5 files (the plan does not depend on image
size). A shard job writes every bit depth of its images, so the batch is 1,000 x (2 windows, 1
stats, 9 shards, 3 manifests) = 15,000 jobs, plus `all`.

For the no-op timings, stand-in files take the place of a finished batch's outputs, exactly the
files a real run leaves (checked against one by `--check`): each scan's stats.json, its windows,
its shard receipts (real JSON: they name the records), the records (one per shard and depth,
listing their images), the TIFFs (empty: the workflow lists their names to notice deleted images,
1,728,000 of them), the manifests, the logs and benchmark files. Then `snakemake --touch` records Snakemake's own
metadata for every job, in job order, as a real run does (each job's params, code and inputs),
so the no-op runs compare what a real rerun compares.

With `--floor`, the same DAG is also planned by bare rules (floor.smk below: the same files and
jobs, inputs as plain patterns, `shell: "true"`, no params, log, benchmark, conda, resources or
groups): what Snakemake itself costs for this many jobs, whatever the rules hold.

`--no-stop` leaves `stop` out of the batch, so the workflow reads each scan's length from its file.
A run takes about 15 minutes (25 with `--floor`), most of it making and removing the finished batch.

    python benchmarks/workflow_dryrun.py [--scans 1000] [--repeats 3] [--workdir DIR] [--floor] [--no-stop]
    python benchmarks/workflow_dryrun.py --check 3    # the stand-ins against a real run of 3 scans
"""

import argparse
import json
import shutil
import statistics
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
SHARD_SIZE, SHARDS = 64, 9
BITS = [8, 16, 32]
DEPTHS = ["u8", "u16", "f32"]  # in the order of BITS
QUANTISED = ["u8", "u16"]  # the depths with a window job
PATTERN = "{scan}_%05d.tif"
TARGET_SECONDS = 10.0
# `snakemake --touch` sleeps 0.1 s before each job it marks (15,000 jobs: 25 minutes); the
# stand-ins exist already, so the marks need no pause.
TOUCH = (
    "import sys; from snakemake.executors import touch; touch.Executor.SLEEPING_TIME = 0; "
    "from snakemake.cli import main; sys.argv[0] = 'snakemake'; main()"
)
FLOOR = """# The batch's DAG in bare rules (benchmarks/workflow_dryrun.py --floor)
SCANS = [str(scan) for scan in range(int(config["floor_scans"]))]
RANGES = [f"{first:05d}-{first + SHARD_SIZE - 1:05d}" for first in range(0, SHARD_SIZE * SHARDS, SHARD_SIZE)]
WINDOWS = ["results/{scan}/.work/window-u8.json", "results/{scan}/.work/window-u16.json"]

wildcard_constraints:
    scan=r"[A-Za-z0-9][A-Za-z0-9_.-]*",
    depth="u8|u16|f32",

rule all:
    input:
        expand("results/{scan}/stats.json", scan=SCANS),
        expand("results/{scan}/{depth}/manifest.json", scan=SCANS, depth=["u8", "u16", "f32"]),

rule window:
    input: "data/{scan}.nxs"
    output: "results/{scan}/.work/window-{depth}.json"
    shell: "true"

rule shard:
    input: "data/{scan}.nxs", WINDOWS
    output: "results/{scan}/.work/shards/{first}-{last}.json"
    shell: "true"

rule manifest:
    input: [f"results/{{scan}}/.work/shards/{r}.json" for r in RANGES]
    output: "results/{scan}/{depth}/manifest.json"
    shell: "true"

rule stats:
    input: "data/{scan}.nxs", WINDOWS, [f"results/{{scan}}/{d}/manifest.json" for d in ["u8", "u16", "f32"]]
    output: "results/{scan}/stats.json"
    shell: "true"
""".replace("SHARD_SIZE", str(SHARD_SIZE)).replace("SHARDS", str(SHARDS))


def make_batch(root: Path, scans: int, stop: bool = True) -> None:
    """A copy of the workflow and a batch of ``scans`` tiny volumes of SHARDS shards each. With
    ``stop``, the batch gives each scan's range; without, the workflow reads it from each file."""
    for name in WORKFLOW:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    (root / "data").mkdir()
    for scan in range(scans):
        with h5py.File(root / "data" / f"{scan}.nxs", "w") as file:
            file.create_dataset("data", (SHARD_SIZE * SHARDS, 2, 2), np.float32, fillvalue=0.5)
    entry = {"id": f"0-{scans - 1}", "input": "data/{scan}.nxs", "dataset": "/data"}
    if stop:
        entry["stop"] = SHARD_SIZE * SHARDS
    config = {
        "shard_threads": 1,
        "defaults": {
            "bits": BITS,
            "shard_size": SHARD_SIZE,
            "window": {"lo": 0, "hi": 1},
            "output_pattern": PATTERN,
        },
        "scans": [entry],
    }
    (root / "batch.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def shards() -> list[tuple[int, int]]:
    return [(first, first + SHARD_SIZE - 1) for first in range(0, SHARD_SIZE * SHARDS, SHARD_SIZE)]


def write(path: Path, text: str = "") -> None:
    path.write_text(text)


def finished_batch(root: Path, scans: int) -> None:
    """Stand-ins for every file a finished run leaves (see the module's docstring), then
    Snakemake's metadata for each job (`--touch`, which also sets the outputs' times in job order)."""
    for scan in map(str, range(scans)):
        results, logs, bench = root / "results" / scan, root / "logs" / scan, root / "logs" / "benchmarks" / scan
        for directory in (
            *(results / depth for depth in DEPTHS),
            *(results / ".work" / depth for depth in DEPTHS),
            results / ".work" / "shards",
            logs / "shards",
            bench / "shards",
        ):
            directory.mkdir(parents=True, exist_ok=True)
        for depth in QUANTISED:
            write(results / ".work" / f"window-{depth}.json", "{}")
            write(logs / f"window-{depth}.log")
            write(bench / f"window-{depth}.tsv")
        for first, last in shards():
            name = f"{first:05d}-{last:05d}"
            records = {depth: f"results/{scan}/.work/{depth}/{name}.json" for depth in DEPTHS}
            for depth in DEPTHS:
                files = [PATTERN.replace("{scan}", scan) % index for index in range(first, last + 1)]
                for file in files:
                    write(results / depth / file)
                images = [{"index": index, "file": file} for index, file in zip(range(first, last + 1), files)]
                write(results / ".work" / depth / f"{name}.json", json.dumps({"images": images}))
            write(
                results / ".work" / "shards" / f"{name}.json",
                json.dumps({"scan": scan, "first": first, "last": last, "records": records}),
            )
            write(logs / "shards" / f"{name}.log")
            write(bench / "shards" / f"{name}.tsv")
        for depth in DEPTHS:
            write(results / depth / "manifest.json", "{}")
            write(logs / f"manifest-{depth}.log")
            write(bench / f"manifest-{depth}.tsv")
        write(results / "stats.json", "{}")
        write(logs / "stats.log")
        write(bench / "stats.tsv")
    snakemake(root, "--touch", "--forceall", "--cores", "1000", "--quiet", "all", python=["-c", TOUCH])


def snakemake(root: Path, *args: str, python: list[str] | None = None) -> str:
    command = [sys.executable, *(python or ["-m", "snakemake"]), "--configfile", "batch.yaml", *args]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        # Snakemake prints a workflow's error on stdout, its profile notice on stderr
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def timed(root: Path, *args: str, nothing: bool = False) -> float:
    """Wall seconds of one snakemake run; with ``nothing``, it must find nothing to do."""
    start = time.perf_counter()
    output = snakemake(root, *args)
    seconds = time.perf_counter() - start
    if nothing and "Nothing to be done" not in output:
        raise SystemExit(f"{' '.join(args)}: the finished batch is not finished:\n{output[-3000:]}")
    return seconds


def file_set(root: Path) -> set[str]:
    """Every file a run left that planning may look at: results/, logs/ and Snakemake's metadata."""
    found = {str(p.relative_to(root)) for top in ("results", "logs") for p in (root / top).rglob("*") if p.is_file()}
    return found | {f".snakemake/metadata/{p.name}" for p in (root / ".snakemake" / "metadata").iterdir()}


def check(scans: int, workdir: Path | None, keep: bool = False) -> None:
    """The stand-ins of ``scans`` scans against a real run of the same batch: the same files, and
    the no-op run finds nothing to do."""
    base = Path(tempfile.mkdtemp(prefix="tomotiff-dryrun-check-", dir=workdir))
    try:
        real, standin = base / "real", base / "standin"
        for root in (real, standin):
            root.mkdir()
            make_batch(root, scans)
        snakemake(real, "--cores", "2", "--quiet", "rules")
        finished_batch(standin, scans)
        expected, made = file_set(real), file_set(standin)
        if expected != made:
            raise SystemExit(
                f"the stand-ins differ from a real run: only in the real run {sorted(expected - made)[:20]}, "
                f"only in the stand-ins {sorted(made - expected)[:20]}"
            )
        for root in (real, standin):
            timed(root, "-n", "--quiet", "rules", nothing=True)
        print(f"{len(expected)} files, the same in both; a dry run of each finds nothing to do")
    finally:
        if keep:
            print(f"the batches: {base}", file=sys.stderr)
        else:
            shutil.rmtree(base)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scans", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="runs of each step; the median is reported")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--no-stop", action="store_true", help="leave stop out: the workflow reads each scan's length from its file"
    )
    parser.add_argument("--keep", action="store_true", help="keep the batches made (their path goes to stderr)")
    parser.add_argument("--check", type=int, metavar="SCANS", help="compare the stand-ins with a real run, and stop")
    parser.add_argument("--floor", action="store_true", help="also time the same DAG in bare rules (floor.smk)")
    args = parser.parse_args()
    if args.check:
        check(args.check, args.workdir, args.keep)
        return
    root = Path(tempfile.mkdtemp(prefix="tomotiff-dryrun-", dir=args.workdir))
    steps = ("dry run of the new batch", "no-op dry run", "no-op real run")
    times: dict[str, list[float]] = {step: [] for step in steps}
    if args.floor:
        times.update({f"bare rules: {step}": [] for step in steps})
    floor = ("-s", "floor.smk", "--workflow-profile", "none", "--config", f"floor_scans={args.scans}")
    try:
        make_batch(root, args.scans, stop=not args.no_stop)
        (root / "floor.smk").write_text(FLOOR)
        for _ in range(args.repeats):
            times["dry run of the new batch"].append(timed(root, "-n", "--quiet", "rules"))
            if args.floor:
                times["bare rules: dry run of the new batch"].append(timed(root, *floor, "-n", "--quiet", "rules"))
        finished_batch(root, args.scans)
        for _ in range(args.repeats):  # alternating, so drift on a shared machine hits both alike
            times["no-op dry run"].append(timed(root, "-n", "--quiet", "rules", nothing=True))
            times["no-op real run"].append(timed(root, "--cores", "2", "--quiet", "rules", nothing=True))
        if args.floor:  # the bare rules' own metadata (their code and params differ from the workflow's)
            snakemake(root, *floor, "--touch", "--forceall", "--cores", "1000", "--quiet", "all", python=["-c", TOUCH])
            for _ in range(args.repeats):
                times["bare rules: no-op dry run"].append(timed(root, *floor, "-n", "--quiet", "rules", nothing=True))
                times["bare rules: no-op real run"].append(
                    timed(root, *floor, "--cores", "2", "--quiet", "rules", nothing=True)
                )
    finally:
        if args.keep:
            print(f"the batch: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root)
    jobs = args.scans * (len(QUANTISED) + 1 + SHARDS + len(DEPTHS)) + 1
    print(
        f"| step ({args.scans} scans x {len(BITS)} bit depths x {SHARDS} shards, {jobs:,} jobs"
        f"{', stop from each file' if args.no_stop else ''}) | median s | runs, s | target < {TARGET_SECONDS:g} s |"
    )
    print("| --- | ---: | --- | --- |")
    for name, seconds in times.items():
        median = statistics.median(seconds)
        runs = ", ".join(f"{s:.1f}" for s in seconds)
        print(f"| {name} | {median:.1f} | {runs} | {'PASS' if median < TARGET_SECONDS else 'FAIL'} |")


if __name__ == "__main__":
    main()
