"""The Snakemake workflow (Snakefile, config/, rules/, scripts/, envs/, profiles/), run as users
run it: real `snakemake` processes in temporary copies of the workflow, on synthetic scans the
workflow makes itself and on the real beamline files in ../shared. Every image is checked
against what the CLI writes with the same parameters (the manifests, checksums included, must
be equal), and each of the issue's incremental behaviours is one test.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml

from conftest import read_tiff, run_cli, tiff_names
from tomotiff import synthetic
from tomotiff.manifest import verify

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
WORKFLOW = ["Snakefile", "config", "rules", "scripts", "envs", "profiles", "report"]
SAVU = "/entry/final_result_tomo/data"
GDA = "/entry1/instrument/pco1_hw_hdf/data"
JOB_LINE = re.compile(r"^(?:local)?(?:rule|checkpoint) (\w+):$")


# --- helpers ---------------------------------------------------------------------------------


def copy_workflow(destination: Path, config: dict | None = None) -> Path:
    """A fresh clone of the workflow, with ``config`` as config/config.yaml when given."""
    destination.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, destination / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, destination / name)
    if config is not None:
        write_config(destination, config)
    return destination


def write_config(workdir: Path, config: dict) -> None:
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def read_config(workdir: Path) -> dict:
    return yaml.safe_load((workdir / "config" / "config.yaml").read_text())


def snakemake(workdir: Path, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def run_ok(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    done = snakemake(workdir, "--cores", "2", *args)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    return done


def planned(workdir: Path, *args: str, env: dict | None = None) -> list[tuple[str, dict]]:
    """The jobs a dry run lists: (rule, wildcards)."""
    done = snakemake(workdir, "--dry-run", "--cores", "2", *args, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    jobs = []
    for line in (done.stdout + "\n" + done.stderr).splitlines():
        match = JOB_LINE.match(line.strip())
        if match:
            jobs.append([match.group(1), {}])
        elif jobs and line.strip().startswith("wildcards: "):
            jobs[-1][1] = dict(kv.split("=", 1) for kv in line.strip()[len("wildcards: ") :].split(", "))
    return [(rule, wildcards) for rule, wildcards in jobs]


def output_of(workdir: Path, *args: str) -> str:
    """stdout and stderr of a failing dry run."""
    done = snakemake(workdir, "--dry-run", "--cores", "1", *args)
    assert done.returncode != 0
    return done.stdout + done.stderr


def nothing_to_do(workdir: Path) -> bool:
    done = snakemake(workdir, "--dry-run", "--cores", "2")
    assert done.returncode == 0, done.stderr[-4000:]
    return "Nothing to be done" in done.stdout + done.stderr


def snapshot(workdir: Path) -> dict[str, int]:
    """mtime (ns) of every file under results/, to see exactly what a run rewrote."""
    return {str(p.relative_to(workdir)): p.stat().st_mtime_ns for p in (workdir / "results").rglob("*") if p.is_file()}


def changed(before: dict[str, int], after: dict[str, int]) -> set[str]:
    return {path for path, mtime in after.items() if before.get(path) != mtime}


def manifest(path: Path) -> dict:
    return json.loads(path.read_text())


def assert_same_as_cli(workflow_dir: Path, cli_dir: Path) -> None:
    """The workflow's manifest.json equals the CLI's: same header (source, window, formula,
    version), same image names and same checksums, so the TIFFs are byte for byte the same."""
    ours, theirs = manifest(workflow_dir / "manifest.json"), manifest(cli_dir / "manifest.json")
    assert ours == theirs
    assert verify(str(workflow_dir)) == []


def cli_tiffs(tmp_path: Path, command: str, *args: object) -> Path:
    out = tmp_path / f"cli-{hashlib.sha1(repr((command, args)).encode()).hexdigest()[:10]}"
    done = run_cli(command, "-q", *args, out)
    assert done.returncode == 0, done.stderr
    return out


def stray_files(directory: Path) -> list[str]:
    """Temporary or lock files (tomotiff writes them under hidden names) left anywhere below."""
    return sorted(str(p) for p in directory.rglob(".*") if p.is_file())


# --- files that need no Snakemake run ---------------------------------------------------------


PYPI_NAME = {
    "python-xxhash": "xxhash",
    "matplotlib-base": "matplotlib",
}  # conda-forge name -> PyPI name, where they differ


def _requirement(text: str) -> tuple[str, str]:
    match = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)\s*([^#]*?)\s*(#.*)?", text)
    name = match.group(1).lower().replace("_", "-")
    return PYPI_NAME.get(name, name), match.group(2).replace(" ", "")


def test_conda_environment_matches_pyproject():
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    env = yaml.safe_load((REPO / "envs" / "tomotiff.yaml").read_text())
    conda = dict(_requirement(dep) for dep in env["dependencies"] if isinstance(dep, str))
    python = conda.pop("python")
    assert python == pyproject["requires-python"].replace(" ", "")
    build = {name: conda.pop(name) for name in ("pip", "setuptools", "c-compiler")}  # for installing tomotiff itself
    assert (
        f"setuptools{build['setuptools']}"
        in tomllib.loads((REPO / "pyproject.toml").read_text())["build-system"]["requires"]
    )
    assert conda == dict(_requirement(dep) for dep in pyproject["dependencies"])
    assert "conda-forge" in env["channels"]
    deploy = (REPO / "envs" / "tomotiff.post-deploy.sh").read_text()  # Snakemake runs it once the env exists
    assert 'pip install --no-deps --no-build-isolation -e "$(dirname "$0")/.."' in deploy


def test_every_rule_has_log_benchmark_conda_and_resources():
    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    rules = re.split(r"^(?:rule|checkpoint) ", text, flags=re.M)[1:]
    assert len(rules) >= 6
    for body in rules:
        name = body.split(":")[0]
        for directive in ("log:", "benchmark:", "conda:", "threads:", "resources:", "mem_mb=", "runtime=", "script:"):
            assert f"    {directive}" in body or f"        {directive}" in body, f"rule {name} lacks {directive}"
        assert "shell:" not in body and "run:" not in body, f"rule {name}: user strings must not reach a shell"


def test_profiles():
    """The workflow profile (applied by Snakemake itself) holds what the workflow needs; the site
    profiles hold where it runs."""
    workflow = yaml.safe_load((REPO / "profiles/default/config.yaml").read_text())
    assert workflow["scheduler"] == "greedy" and workflow["rerun-incomplete"] and workflow["keep-going"]
    assert {"stats", "window", "shard", "shard_of_kind"} <= set(workflow["set-resources"])
    assert workflow["groups"]["shard"] in workflow["group-components"]
    assert yaml.safe_load((REPO / "profiles/local/config.yaml").read_text()) == {"cores": "all"}
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert slurm["executor"] == "slurm" and "jobs" in slurm and "latency-wait" in slurm
    assert not set(slurm) & set(workflow), "a key in both: the workflow profile would override the site's"


# --- the demo batch: config/config.yaml on a fresh clone ----------------------------------------


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory) -> tuple[Path, Path]:
    """`snakemake --cores 2` on a fresh clone (the README's main job), and a copy of the result."""
    root = tmp_path_factory.mktemp("demo")
    workdir = copy_workflow(root / "wf")
    run_ok(workdir)
    shutil.copytree(workdir, root / "finished", symlinks=True)
    return workdir, root / "finished"


@pytest.fixture
def demo(demo_run) -> Path:
    """The finished demo batch, as it was when it finished, at the path where it ran (every TIFF
    records its source's absolute path, so a moved copy would rerun): each test may change it."""
    workdir, finished = demo_run
    shutil.rmtree(workdir)
    shutil.copytree(finished, workdir, symlinks=True)
    return workdir


@pytest.mark.slow
def test_lint_is_clean(tmp_path):
    done = snakemake(copy_workflow(tmp_path), "--lint")
    assert done.returncode == 0 and "Lints for" not in done.stdout + done.stderr, done.stdout + done.stderr
    assert "Congratulations" in done.stdout + done.stderr


@pytest.mark.slow
def test_demo_batch_matches_the_cli(demo, tmp_path):
    results = demo / "results"
    expected = {
        "1001": ["u8", "u16", "f32"],
        "1002": ["u8", "u16", "f32"],
        "1003": ["u8", "u16", "f32"],
        "23912": ["u8"],
        "87637": ["u8", "u16"],
    }
    assert sorted(p.name for p in results.iterdir()) == sorted(expected)
    for scan, depths in expected.items():
        assert sorted(p.name for p in (results / scan).iterdir() if not p.name.startswith(".")) == sorted(
            ["stats.json", *depths]
        )
        for depth in depths:
            assert verify(str(results / scan / depth)) == []
    savu = demo / "resources/demo/savu/1002.nxs"
    common = ("-d", SAVU, "-i", "1", "-o", "1002_%05d.tif", savu)
    assert_same_as_cli(
        results / "1002/u8", cli_tiffs(tmp_path, "nxs2tiffux", "-u", "8", "--use_ref", "-p", "0.1", *common)
    )
    assert_same_as_cli(results / "1002/u16", cli_tiffs(tmp_path, "nxs2tiffux", "-u", "16", "-p", "0.1", *common))
    assert_same_as_cli(results / "1002/f32", cli_tiffs(tmp_path, "nxs2tiff", "--fp", *common))
    raw = cli_tiffs(
        tmp_path,
        "nxs2tiffux",
        "-d",
        GDA,
        "-b",
        "4",
        "-s",
        "124",
        "-u",
        "8",
        "--lo",
        "0",
        "--hi",
        "40000",
        "-o",
        "p_23912_%05d.tif",
        demo / "resources/demo/gda/23912.nxs",
    )
    assert_same_as_cli(results / "23912/u8", raw)
    tiffs = cli_tiffs(
        tmp_path,
        "tiff2tiffux",
        "-i",
        "recon_%05d.tif",
        "-o",
        "87637_%05d.tif",
        "-u",
        "16",
        "--use_ref",
        "-r",
        "10",
        "-p",
        "1",
        demo / "resources/demo/tiff/87637",
    )
    assert_same_as_cli(results / "87637/u16", tiffs)
    assert read_tiff(results / "23912/u8/p_23912_00004.tif")[1]["image_key"] == 0.0  # a raw scan: keys recorded
    names = sorted(p.name for p in (results / "23912/u8").iterdir())
    assert names == ["manifest.json", *[f"p_23912_{i:05d}.tif" for i in range(4, 124)]]


@pytest.mark.slow
def test_demo_stats_json(demo):
    stats = json.loads((demo / "results/1001/stats.json").read_text())
    for key in (
        "shape",
        "dtype",
        "axis",
        "range",
        "reference",
        "min",
        "max",
        "mean",
        "percentiles",
        "histogram",
        "windows",
        "source",
        "dataset",
        "tomotiff_version",
    ):
        assert key in stats, key
    assert stats["shape"] == [48, 64, 48] and stats["axis"] == 1 and stats["dtype"] == "float32"
    assert stats["range"] == {"begin": 0, "stop": 64, "count": 64} and stats["reference"] == 32
    assert {"0", "0.1", "1", "50", "99", "99.9", "100"} <= set(stats["percentiles"])
    assert sum(stats["histogram"]["counts"]) == 48 * 48
    window = manifest(demo / "results/1001/u8/manifest.json")["window"]
    assert stats["windows"]["u8"] == stats["windows"]["u16"] == window
    assert (window["lo"], window["hi"]) == (stats["percentiles"]["0.1"], stats["percentiles"]["99.9"])
    raw = json.loads((demo / "results/23912/stats.json").read_text())
    assert (
        raw["dtype"] == "uint16" and raw["reference"] == 4 + 120 // 2 and raw["windows"]["u8"]["method"] == "explicit"
    )


@pytest.mark.slow
def test_1_second_run_does_nothing(demo):
    assert nothing_to_do(demo)
    done = snakemake(demo, "--dry-run", "--profile", "profiles/local")
    assert done.returncode == 0 and "Nothing to be done" in done.stdout + done.stderr, done.stderr


@pytest.mark.slow
def test_logs_and_benchmarks_and_no_stray_files(demo):
    assert stray_files(demo / "results") == []
    logs = {p.relative_to(demo / "logs").as_posix() for p in (demo / "logs").rglob("*") if p.is_file()}
    assert {
        "1001/stats.log",
        "1001/window-u16.log",
        "1001/shards/00000-00031.log",
        "1001/manifest-f32.log",
        "benchmarks/1001/shards/00032-00063.tsv",
        "demo/savu/1001.log",
    } <= logs
    shard_log = (demo / "logs/1001/shards/00000-00031.log").read_text()
    assert "at u8, u16, f32 from one read" in shard_log and "u8 window: lo=" in shard_log


@pytest.mark.slow
def test_2_adding_a_scan_runs_only_its_jobs(demo, tmp_path):
    workdir = demo
    config = read_config(workdir)
    config["scans"].append(
        {
            "id": 1004,
            "input": "resources/demo/savu/{scan}.nxs",
            "dataset": SAVU,
            "axis": 1,
            "stop": 40,
            "bits": [16, 32],
        }
    )
    write_config(workdir, config)
    jobs = planned(workdir)
    assert {rule for rule, _ in jobs} == {"demo_hdf5", "window", "stats", "shard", "manifest", "all"}
    assert all(w.get("scan", w.get("name")) == "1004" for rule, w in jobs if rule != "all")
    assert sorted(w["first"] for rule, w in jobs if rule == "shard") == ["00000", "00032"]  # every depth each
    before = snapshot(workdir)
    run_ok(workdir)
    assert all(path.startswith("results/1004/") for path in changed(before, snapshot(workdir)))
    assert_same_as_cli(
        workdir / "results/1004/u16",
        cli_tiffs(
            tmp_path,
            "nxs2tiffux",
            "-d",
            SAVU,
            "-i",
            "1",
            "-s",
            "40",
            "-u",
            "16",
            "-p",
            "0.1",
            "-o",
            "1004_%05d.tif",
            workdir / "resources/demo/savu/1004.nxs",
        ),
    )
    assert nothing_to_do(workdir)


@pytest.mark.slow
def test_3_changing_a_window_or_the_bit_depths_reruns_only_what_they_affect(demo, tmp_path):
    """A shard writes every depth from one read: a changed depth reruns the scan's shards, and the
    depths that did not change come out byte for byte as they were."""
    workdir = demo
    config = read_config(workdir)
    raw, recon, tiffs = config["scans"][1], config["scans"][0], config["scans"][2]
    assert (raw["id"], recon["id"], tiffs["id"]) == (23912, "1001-1003", 87637)
    raw["window"] = {"lo": 1000, "hi": 35000}  # a known range: the dry run lists every job
    recon["windows"] = {"u16": {"percent": 1}}  # only the 16-bit window of 1001..1003
    tiffs["bits"] = [8, 16, 32]  # adds float32, keeps the others
    write_config(workdir, config)
    jobs = planned(workdir)
    raw_jobs = sorted((rule, w.get("depth", ""), w.get("first", "")) for rule, w in jobs if w.get("scan") == "23912")
    assert raw_jobs == [
        ("manifest", "u8", ""),
        ("shard", "", "00004"),
        ("shard", "", "00032"),
        ("shard", "", "00064"),
        ("shard", "", "00096"),
        ("stats", "", ""),
        ("window", "u8", ""),
    ]
    assert {(rule, w.get("depth")) for rule, w in jobs if w.get("scan") == "1001"} == {
        ("window", "u16"),
        ("stats", None),
        ("shard", None),
        ("manifest", "u8"),
        ("manifest", "u16"),
        ("manifest", "f32"),
    }  # the u8 window is not chosen again
    assert {rule for rule, w in jobs if w.get("scan") == "87637"} == {
        "shard",
        "manifest",
        "stats",
    }  # stats sums up the manifests
    digests = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in (workdir / "results").rglob("*.tif")}
    run_ok(workdir)
    same = {
        path.relative_to(workdir / "results").parts[:2]
        for path, digest in digests.items()
        if hashlib.sha256(path.read_bytes()).hexdigest() == digest
    }
    differ = {path.relative_to(workdir / "results").parts[:2] for path in digests} - same
    assert differ == {("23912", "u8"), *((scan, "u16") for scan in ("1001", "1002", "1003"))}
    assert {("1001", "u8"), ("1001", "f32"), ("87637", "u8"), ("87637", "u16")} <= same
    assert len(list((workdir / "results/87637/f32").glob("*.tif"))) == 40
    assert_same_as_cli(
        workdir / "results/23912/u8",
        cli_tiffs(
            tmp_path,
            "nxs2tiffux",
            "-d",
            GDA,
            "-b",
            "4",
            "-s",
            "124",
            "-u",
            "8",
            "--lo",
            "1000",
            "--hi",
            "35000",
            "-o",
            "p_23912_%05d.tif",
            workdir / "resources/demo/gda/23912.nxs",
        ),
    )
    assert_same_as_cli(
        workdir / "results/1003/u16",
        cli_tiffs(
            tmp_path,
            "nxs2tiffux",
            "-d",
            SAVU,
            "-i",
            "1",
            "-u",
            "16",
            "-p",
            "1",
            "-o",
            "1003_%05d.tif",
            workdir / "resources/demo/savu/1003.nxs",
        ),
    )
    assert manifest(workdir / "results/1003/u8/manifest.json")["window"]["percent"] == 0.1
    assert nothing_to_do(workdir)


@pytest.mark.slow
def test_4_a_deleted_tiff_is_restored_by_rerunning_its_shard_only(demo, tmp_path):
    workdir = demo
    gone = [workdir / "results/23912/u8/p_23912_00050.tif", workdir / "results/1002/u16/1002_00005.tif"]
    digests = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in gone}
    for path in gone:
        path.unlink()
    jobs = planned(workdir)
    assert sorted((rule, w.get("scan", ""), w.get("depth", ""), w.get("first", "")) for rule, w in jobs) == [
        ("all", "", "", ""),
        *(("manifest", "1002", depth, "") for depth in ("f32", "u16", "u8")),
        ("manifest", "23912", "u8", ""),
        ("shard", "1002", "", "00000"),
        ("shard", "23912", "", "00032"),
        ("stats", "1002", "", ""),  # stats.json sums up the manifests' clipping
        ("stats", "23912", "", ""),
    ]
    before = snapshot(workdir)
    run_ok(workdir)
    for path, digest in digests.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    rewritten = {os.path.relpath(p, "results") for p in changed(before, snapshot(workdir)) if p.endswith(".tif")}
    assert rewritten == {
        *(f"23912/u8/p_23912_{i:05d}.tif" for i in range(32, 64)),
        *(f"1002/{depth}/1002_{i:05d}.tif" for depth in ("u8", "u16", "f32") for i in range(32)),
    }
    assert verify(str(workdir / "results/23912/u8")) == [] and verify(str(workdir / "results/1002/u16")) == []
    assert nothing_to_do(workdir)


@pytest.mark.slow
def test_7_a_new_tomotiff_version_is_a_parameter_change(demo, tmp_path):
    """A sitecustomize earlier on sys.path makes tomotiff say it is 99.0; the workflow must then
    rerun everything tomotiff computes."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import tomotiff\ntomotiff.__version__ = '99.0'\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    done = snakemake(demo, "--dry-run", "--cores", "2", env=env)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "Params have changed" in output and "99.0" in output
    jobs = planned(demo, env=env)
    assert {"demo_hdf5", "demo_tiffs", "window", "stats", "shard", "manifest"} <= {r for r, _ in jobs}
    assert len([1 for rule, w in jobs if rule == "shard" and w["scan"] == "23912"]) == 4
    assert nothing_to_do(demo)  # the real version again: still up to date


# --- killed runs, bad inputs ---------------------------------------------------------------------


@pytest.mark.slow
def test_5_sigkill_in_a_shard_then_rerun_incomplete(tmp_path):
    workdir = copy_workflow(
        tmp_path / "wf",
        {
            "shard_threads": 1,
            "defaults": {"bits": [16], "shard_size": 1000},
            "scans": [{"id": "big", "input": "data/big.nxs", "dataset": SAVU, "axis": 1, "stop": 1000}],
        },
    )
    synthetic.write_savu_recon(str(workdir / "data/big.nxs"), height=128, count=1000, width=128, chunks=(128, 1, 128))
    out, record = workdir / "results/big/u16", workdir / "results/big/.work/u16/00000-00999.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "snakemake", "--cores", "2"],
        cwd=workdir,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if out.is_dir() and len(list(out.glob("*.tif"))) >= 20:
                break
            time.sleep(0.005)
    finally:
        os.killpg(process.pid, signal.SIGKILL)  # snakemake and its job, as a power cut would
        process.wait()
    written = len(list(out.glob("*.tif")))
    assert not record.exists() and 0 < written < 1000, f"not killed in the middle of the shard ({written} images)"

    locked = snakemake(
        workdir, "--cores", "2", "--rerun-incomplete"
    )  # Snakemake cannot tell a killed run from a live one
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    run_ok(workdir, "--unlock")  # as the README says, once no run is alive
    run_ok(workdir, "--rerun-incomplete")
    assert stray_files(workdir / "results") == []
    assert_same_as_cli(
        out,
        cli_tiffs(
            tmp_path,
            "nxs2tiffux",
            "-d",
            SAVU,
            "-i",
            "1",
            "-s",
            "1000",
            "-u",
            "16",
            "-o",
            "big_%05d.tif",
            workdir / "data/big.nxs",
        ),
    )
    assert nothing_to_do(workdir)


@pytest.mark.slow
def test_6_bad_inputs_fail_naming_the_scan_and_the_others_finish(tmp_path):
    workdir = copy_workflow(
        tmp_path / "wf",
        {
            "defaults": {"bits": [8, 32], "shard_size": 32},
            "scans": [
                {"id": "good", "input": "resources/demo/savu/good.nxs", "dataset": SAVU, "axis": 1},
                {"id": "nofile", "input": "missing/{scan}.nxs", "stop": 20},
                {"id": "nodset", "input": "resources/demo/savu/good.nxs", "dataset": "/entry/nothing", "axis": 1},
                {"id": "notiffs", "input": "missing-dir", "input_pattern": "x_%03d.tif"},
            ],
        },
    )
    done = snakemake(workdir, "--cores", "2", "--keep-going")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "scan nofile: input file not found: missing/nofile.nxs" in output
    assert "scan nodset: dataset '/entry/nothing' not found in resources/demo/savu/good.nxs" in output
    assert "choose one with dataset" in output and "choose one with -d" not in output  # the config's key
    assert "scan notiffs: input directory not found: missing-dir" in output
    assert "scan nodset: dataset '/entry/nothing' not found" in (workdir / "logs/nodset/window-u8.log").read_text()
    for depth in ("u8", "f32"):
        assert verify(str(workdir / f"results/good/{depth}")) == []
    assert (workdir / "results/good/stats.json").exists()
    assert not (workdir / "results/nofile").exists() or not list((workdir / "results/nofile").rglob("*.tif"))


# --- the configuration -------------------------------------------------------------------------------


@pytest.mark.slow
def test_config_errors_reach_the_user_as_one_line(tmp_path):
    """Each config error is tested in test_batch.py; here, that Snakemake shows the line, not a traceback."""
    workdir = copy_workflow(tmp_path, {"scans": [{"id": 5, "input": "a.nxs", "windw": {"lo": 1}}]})
    done = snakemake(workdir, "--dry-run", "--cores", "1")
    output = done.stdout + done.stderr
    assert (
        done.returncode != 0 and "config: scan 5 (scans[0]): Additional properties are not allowed ('windw'" in output
    )
    assert "Traceback" not in output and not (workdir / "results").exists()


@pytest.mark.slow
def test_config_defaults_ranges_templates_and_duplicates(tmp_path):
    workdir = copy_workflow(
        tmp_path,
        {
            "defaults": {"shard_size": 50, "dataset": "/entry/data", "bitz": [8]},
            "scans": [{"id": 1, "input": "a.nxs"}],
        },
    )
    assert "config: defaults: Additional properties are not allowed ('bitz'" in output_of(workdir)
    write_config(
        workdir,
        {
            "defaults": {"shard_size": 50, "dataset": "/entry/data", "stop": 120},
            "scans": [
                {"id": "0098-0101", "input": "/dls/i13/data/2017/cm16786-1/raw/{scan}.nxs"},
                {"id": "tiffs", "input": "slices/{scan}", "input_pattern": "recon_{scan}_%05d.tif", "stop": 10},
            ],
        },
    )
    jobs = planned(workdir)
    assert {w["scan"] for rule, w in jobs if rule == "stats"} == {"0098", "0099", "0100", "0101", "tiffs"}
    assert sorted(w["first"] for rule, w in jobs if rule == "shard" and w["scan"] == "0100") == [
        "00000",
        "00050",
        "00100",
    ]
    assert {(w["scan"], w["depth"]) for rule, w in jobs if rule == "manifest"} == {
        (s, "u8") for s in ("0098", "0099", "0100", "0101", "tiffs")
    }  # the default bit depth is 8
    write_config(workdir, {"scans": [{"id": "5-7", "input": "a.nxs"}, {"id": 6, "input": "b.nxs"}]})
    assert "config: scan 6 (scans[1]): scan 6 is also listed in scans[0]" in output_of(workdir)


@pytest.mark.slow
def test_a_configfile_replaces_the_demo_batch(tmp_path):
    workdir = copy_workflow(tmp_path)
    (tmp_path / "batch.yaml").write_text(
        yaml.safe_dump({"scans": [{"id": 5, "input": "resources/demo/gda/{scan}.nxs", "dataset": GDA, "stop": 10}]})
    )
    jobs = planned(workdir, "--configfile", str(tmp_path / "batch.yaml"))
    assert {w.get("scan", w.get("name")) for rule, w in jobs if rule != "all"} == {"5"}


@pytest.mark.slow
def test_without_tomotiff_where_snakemake_runs_the_error_names_the_fix(tmp_path):
    """As with only Snakemake installed: one line saying how to install tomotiff, no traceback."""
    workdir = copy_workflow(tmp_path / "wf")
    hidden = tmp_path / "hide" / "tomotiff"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ModuleNotFoundError('no tomotiff here', name='tomotiff')\n")
    done = snakemake(workdir, "--dry-run", "--cores", "1", env={**os.environ, "PYTHONPATH": str(hidden.parent)})
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "tomotiff is not installed where snakemake runs: install it with pip install -e ." in output, output[-2000:]


@pytest.mark.slow
def test_the_commented_examples_of_the_demo_config_are_valid(tmp_path):
    """Uncommented, the demo config's examples of every option plan as they say (on the demo
    raw scan, before it exists: its image keys are known from tomotiff.synthetic)."""
    workdir = copy_workflow(tmp_path)
    text = (REPO / "config/config.yaml").read_text()
    (tmp_path / "examples.yaml").write_text(re.sub(r"^  # (- |  )", r"  \1", text, flags=re.M))
    jobs = planned(workdir, "--configfile", str(tmp_path / "examples.yaml"))
    assert {w["scan"] for rule, w in jobs if rule == "stats"} >= {"23912-flats", "23912-kinds", "87637-quick"}
    assert {w["kind"] for rule, w in jobs if rule == "manifest_of_kind"} == {"projections", "flats", "darks"}
    # the demo scan's flats (2, 3, 124, 125) lie in its first and last 32-image shards only
    assert sorted({w["first"] for rule, w in jobs if rule == "shard_of_kind" and w["kind"] == "flats"}) == [
        "00000",
        "00096",
    ]


# --- the commands' options in the batch config -----------------------------------------------------


OPTION_SCANS = [
    # darks only (0, 1, 62, 63), keys at a given path: two of the four shards hold no image
    {
        "id": "darks",
        "input": "data/raw.nxs",
        "dataset": GDA,
        "keys": "darks",
        "image_key_path": "entry1/tomo_entry/instrument/detector/image_key",
        "bits": [8, 32],
    },
    # a cropped global window (every third image), and a cropped reference window for 16 bits
    {
        "id": "glob",
        "input": "data/recon.nxs",
        "dataset": SAVU,
        "axis": 1,
        "crop": [1, 2, 3, 4],
        "bits": [8, 16],
        "window": {"method": "global", "percent": 0.5, "sample": 3},
        "windows": {"u16": {"percent": 1}},
    },
    {
        "id": "cropbin",
        "input": "data/tiffs",
        "input_pattern": "recon_%05d.tif",
        "crop": [2, 3, 4, 5],
        "bin": 2,
        "bits": [16],
        "window": {"reference": 10, "percent": 1},
    },
    {
        "id": "packed",
        "input": "data/recon.nxs",
        "dataset": SAVU,
        "axis": 1,
        "compression": "zlib",
        "imagej": True,
        "bits": [8, 32],
    },
    # the flats (2, 3, 60, 61) as one zstd stack, named by the first of them
    {
        "id": "stacked",
        "input": "data/raw.nxs",
        "dataset": GDA,
        "keys": "flats",
        "stack": True,
        "compression": "zstd",
        "bits": [16],
    },
    # each kind into its own directory: flats (2, 3, 60, 61) and projections (4..59); no darks in 2..61
    {
        "id": "split",
        "input": "data/raw.nxs",
        "dataset": GDA,
        "split_keys": True,
        "begin": 2,
        "stop": 62,
        "bits": [8],
        "window": {"percent": 1},
    },
]
# The CLI command and options giving the same files as each scan and bit depth above.
OPTION_CLI = {
    ("darks", "u8"): (
        "nxs2tiffux",
        "-u",
        "8",
        "-d",
        GDA,
        "--keys",
        "darks",
        "--image-key-path",
        "entry1/tomo_entry/instrument/detector/image_key",
        "data/raw.nxs",
    ),
    ("darks", "f32"): (
        "nxs2tiff",
        "--fp",
        "-d",
        GDA,
        "--keys",
        "darks",
        "--image-key-path",
        "entry1/tomo_entry/instrument/detector/image_key",
        "data/raw.nxs",
    ),
    ("glob", "u8"): (
        "nxs2tiffux",
        "-u",
        "8",
        "-d",
        SAVU,
        "-i",
        "1",
        "--crop",
        "1",
        "2",
        "3",
        "4",
        "--window",
        "global",
        "-p",
        "0.5",
        "--sample",
        "3",
        "data/recon.nxs",
    ),
    ("glob", "u16"): (
        "nxs2tiffux",
        "-u",
        "16",
        "-d",
        SAVU,
        "-i",
        "1",
        "--crop",
        "1",
        "2",
        "3",
        "4",
        "-p",
        "1",
        "data/recon.nxs",
    ),
    ("cropbin", "u16"): (
        "tiff2tiffux",
        "-u",
        "16",
        "-i",
        "recon_%05d.tif",
        "--crop",
        "2",
        "3",
        "4",
        "5",
        "--bin",
        "2",
        "--use_ref",
        "-r",
        "10",
        "-p",
        "1",
        "data/tiffs",
    ),
    ("packed", "u8"): (
        "nxs2tiffux",
        "-u",
        "8",
        "-d",
        SAVU,
        "-i",
        "1",
        "--compression",
        "zlib",
        "--imagej",
        "data/recon.nxs",
    ),
    ("packed", "f32"): (
        "nxs2tiff",
        "--fp",
        "-d",
        SAVU,
        "-i",
        "1",
        "--compression",
        "zlib",
        "--imagej",
        "data/recon.nxs",
    ),
    ("stacked", "u16"): (
        "nxs2tiffux",
        "-u",
        "16",
        "-d",
        GDA,
        "--keys",
        "flats",
        "--stack",
        "--compression",
        "zstd",
        "data/raw.nxs",
    ),
}


def assert_option_same_as_cli(
    workdir: Path, tmp_path: Path, scan: str, depth: str, *args: str, without: str | None = None
) -> None:
    """The scan's depth equals what the CLI writes with OPTION_CLI's options, then ``args``
    (which win: the last --keys, --crop, ... counts) and ``without`` a flag, run in the
    workflow's directory on the same (relative) input."""
    command, *options = OPTION_CLI[scan, depth]
    options = [option for option in options if option != without]
    out = tmp_path / f"cli-{scan}-{depth}-{hashlib.sha1(repr((args, without)).encode()).hexdigest()[:8]}"
    done = run_cli(command, "-q", *options[:-1], *args, "-o", f"{scan}_%05d.tif", options[-1], out, cwd=workdir)
    assert done.returncode == 0, done.stderr
    assert_same_as_cli(workdir / "results" / scan / depth, out)


def rewritten_outputs(paths: set[str]) -> set[tuple[str, str]]:
    """What a run rewrote, per scan: ``stats``, ``window-u8``, or a depth (its images, shard
    records or manifest); the shards' receipts stand for the depths their records list."""
    places = set()
    for path in paths:
        parts = Path(path).parts  # results, scan, ...
        name = parts[3] if parts[2] == ".work" else parts[2]
        if name != "shards":
            places.add((parts[1], name.removesuffix(".json")))
    return places


def planned_by_scan(workdir: Path) -> dict[str, set[tuple[str, str, str]]]:
    """The jobs of a dry run, per scan: (rule, depth or depth/kind, first shard image)."""
    jobs: dict[str, set] = {}
    for rule, w in planned(workdir):
        if rule != "all":
            place = "/".join(w[key] for key in ("depth", "kind") if key in w)
            jobs.setdefault(w["scan"], set()).add((rule, place, w.get("first", "")))
    return jobs


def shard_jobs(depth: str, *firsts: int) -> set[tuple[str, str, str]]:
    """The jobs rewriting a depth (or with split_keys, depth/kind) from the given shards: the shards,
    which write every depth (of their kind), the depth's manifest, and stats.json, which sums up the
    manifests' clipping."""
    suffix = "_of_kind" if "/" in depth else ""
    kind = depth.partition("/")[2]
    shards = {(f"shard{suffix}", kind, f"{first:05d}") for first in firsts}
    return shards | {(f"manifest{suffix}", depth, ""), ("stats", "", "")}


@pytest.fixture(scope="module")
def options_run(tmp_path_factory) -> tuple[Path, Path]:
    """One batch using every option of the commands, on small synthetic files: a raw scan of
    64 images (darks 0, 1, 62, 63; flats 2, 3, 60, 61), a reconstruction of 40 and 24 TIFFs."""
    root = tmp_path_factory.mktemp("options")
    workdir = copy_workflow(root / "wf", {"shard_threads": 1, "defaults": {"shard_size": 16}, "scans": OPTION_SCANS})
    synthetic.write_gda_raw(str(workdir / "data/raw.nxs"), projections=56, flats=4, darks=4, height=24, width=32)
    synthetic.write_savu_recon(str(workdir / "data/recon.nxs"), height=32, count=40, width=36)
    synthetic.write_tiff_dir(str(workdir / "data/tiffs"), "recon_%05d.tif", count=24, height=30, width=34)
    run_ok(workdir)
    shutil.copytree(workdir, root / "finished", symlinks=True)
    return workdir, root / "finished"


@pytest.fixture
def options(options_run) -> Path:
    """The finished options batch, as it finished, at the path where it ran (see demo)."""
    workdir, finished = options_run
    shutil.rmtree(workdir)
    shutil.copytree(finished, workdir, symlinks=True)
    return workdir


@pytest.mark.slow
def test_every_option_matches_the_cli(options, tmp_path):
    workdir = options
    for scan, depth in OPTION_CLI:
        assert_option_same_as_cli(workdir, tmp_path, scan, depth)
    results = workdir / "results"
    # keys: only the darks are written; shards without one leave an empty record
    assert tiff_names(results / "darks/u8") == [f"darks_{i:05d}.tif" for i in (0, 1, 62, 63)]
    assert [manifest(results / f"darks/.work/f32/{r}.json")["images"] for r in ("00016-00031", "00032-00047")] == [
        [],
        [],
    ]
    darks = manifest(results / "darks/u8/manifest.json")
    assert (darks["begin"], darks["stop"], darks["count"], darks["window"]["reference"]) == (0, 64, 4, 32)
    assert darks["image_key_path"] == "/entry1/tomo_entry/instrument/detector/image_key"
    # a global window, chosen once in the window job, with the crop
    window = json.loads((results / "glob/.work/window-u8.json").read_text())["window"]
    assert (
        window["method"] == "global"
        and window["sample"] == 3
        and manifest(results / "glob/u8/manifest.json")["window"] == window
    )
    assert manifest(results / "glob/u16/manifest.json")["crop"] == [1, 2, 3, 4]
    # crop and bin: (30 - 5) x (34 - 9) pixels, binned 2 x 2
    assert read_tiff(results / "cropbin/u16/cropbin_00003.tif")[0].shape == (12, 12)
    # compression and ImageJ metadata; the JSON metadata in ImageJ's Info
    with tifffile.TiffFile(results / "packed/u8/packed_00007.tif") as tif:
        assert tif.is_imagej and tif.pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert json.loads(tif.imagej_metadata["Info"])["index"] == 7
    # stack: one file named as its first image (flat 2), one shard for the whole range
    assert tiff_names(results / "stacked/u16") == ["stacked_00002.tif"]
    assert sorted(p.name for p in (results / "stacked/.work/u16").iterdir()) == ["00000-00063.json"]
    with tifffile.TiffFile(results / "stacked/u16/stacked_00002.tif") as tif:
        assert len(tif.pages) == 4 and tif.pages[0].compression == tifffile.COMPRESSION.ZSTD
    assert [e["page"] for e in manifest(results / "stacked/u16/manifest.json")["images"]] == [0, 1, 2, 3]
    assert stray_files(results) == []


@pytest.mark.slow
def test_split_keys_matches_the_cli_kind_by_kind(options, tmp_path):
    workdir = options
    results = workdir / "results/split/u8"
    out = tmp_path / "cli-split"
    done = run_cli(
        "nxs2tiffux",
        "-q",
        "-u",
        "8",
        "-d",
        GDA,
        "--split-keys",
        "-b",
        "2",
        "-s",
        "62",
        "-p",
        "1",
        "-o",
        "split_%05d.tif",
        "data/raw.nxs",
        out,
        cwd=workdir,
    )
    assert done.returncode == 0, done.stderr
    # as the CLI: a directory per kind present (no darks in 2..61), nothing else beside them
    assert (
        sorted(p.name for p in results.iterdir()) == sorted(p.name for p in out.iterdir()) == ["flats", "projections"]
    )
    for kind in ("flats", "projections"):
        assert_same_as_cli(results / kind, out / kind)
    assert tiff_names(results / "flats") == [f"split_{i:05d}.tif" for i in (2, 3, 60, 61)]
    assert manifest(results / "projections/manifest.json")["window"]["reference"] == 32  # the middle projection
    # a kind's shards are those holding one of its images
    work = workdir / "results/split/.work/u8"
    assert sorted(p.name for p in (work / "flats").iterdir()) == ["00002-00015.json", "00048-00061.json"]
    assert len(list((work / "projections").iterdir())) == 4
    # a deleted flat is rewritten by its shard alone
    (results / "flats/split_00060.tif").unlink()
    assert planned_by_scan(workdir) == {"split": shard_jobs("u8/flats", 48)}
    run_ok(workdir)
    assert_same_as_cli(results / "flats", out / "flats")
    assert nothing_to_do(workdir)


@pytest.mark.slow
def test_changing_an_option_reruns_only_what_it_affects(options, tmp_path):
    workdir = options
    raw_shards, recon_shards = (0, 16, 32, 48), (0, 16, 32)
    config = read_config(workdir)
    scans = {scan["id"]: scan for scan in config["scans"]}
    # Options that change only the images: keys, compression, imagej, bin, stack (no window, no statistics)
    scans["darks"]["keys"] = "flats"
    scans["packed"]["compression"] = "lzw"
    scans["cropbin"]["bin"] = 4
    scans["stacked"]["stack"] = False
    scans["glob"]["crop"] = [2, 2, 2, 2]  # the crop changes the windows and the statistics too
    write_config(workdir, config)
    assert planned_by_scan(workdir) == {
        "darks": shard_jobs("u8", *raw_shards) | shard_jobs("f32", *raw_shards),
        "packed": shard_jobs("u8", *recon_shards) | shard_jobs("f32", *recon_shards),
        "cropbin": shard_jobs("u16", 0, 16),
        "stacked": shard_jobs("u16", *raw_shards),
        "glob": shard_jobs("u8", *recon_shards)
        | shard_jobs("u16", *recon_shards)
        | {("window", "u8", ""), ("window", "u16", ""), ("stats", "", "")},
    }
    before = snapshot(workdir)
    run_ok(workdir)
    assert rewritten_outputs(changed(before, snapshot(workdir))) == {
        ("darks", "u8"),
        ("darks", "f32"),
        ("packed", "u8"),
        ("packed", "f32"),
        ("cropbin", "u16"),
        ("stacked", "u16"),
        *((scan, "stats") for scan in ("darks", "packed", "cropbin", "stacked")),  # the manifests' summary
        ("glob", "u8"),
        ("glob", "u16"),
        ("glob", "window-u8"),
        ("glob", "window-u16"),
        ("glob", "stats"),
    }
    assert nothing_to_do(workdir)
    assert_option_same_as_cli(workdir, tmp_path, "darks", "u8", "--keys", "flats")
    assert_option_same_as_cli(workdir, tmp_path, "packed", "f32", "--compression", "lzw")
    assert_option_same_as_cli(workdir, tmp_path, "cropbin", "u16", "--bin", "4")
    assert_option_same_as_cli(workdir, tmp_path, "stacked", "u16", without="--stack")
    assert_option_same_as_cli(workdir, tmp_path, "glob", "u8", "--crop", "2", "2", "2", "2")

    # The window's method and sample, the key dataset and the output format, each alone
    scans["glob"]["window"]["sample"] = 2  # u8 only: u16 has its own window
    scans["darks"]["image_key_path"] = None  # found by itself: the same keys, but a parameter of everything
    scans["packed"]["imagej"] = False
    scans["stacked"]["compression"] = "none"
    write_config(workdir, config)
    assert planned_by_scan(workdir) == {  # a shard writes every depth: glob's u16 manifest is merged again too
        "glob": shard_jobs("u8", *recon_shards)
        | shard_jobs("u16", *recon_shards)
        | {("window", "u8", ""), ("stats", "", "")},
        "darks": shard_jobs("u8", *raw_shards)
        | shard_jobs("f32", *raw_shards)
        | {("window", "u8", ""), ("stats", "", "")},
        "packed": shard_jobs("u8", *recon_shards) | shard_jobs("f32", *recon_shards),
        "stacked": shard_jobs("u16", *raw_shards),
    }


@pytest.mark.slow
def test_deleted_files_of_selected_keys_and_of_a_stack_are_rewritten(options):
    workdir = options
    results = workdir / "results"
    gone = [results / "darks/f32/darks_00062.tif", results / "stacked/u16/stacked_00002.tif"]
    digests = {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in gone}
    for path in gone:
        path.unlink()
    (results / "darks/.work/u8/00016-00031.json").write_text("{")  # a damaged record: rewritten too
    assert planned_by_scan(workdir) == {
        "darks": shard_jobs("f32", 48) | shard_jobs("u8", 16),
        "stacked": shard_jobs("u16", 0),
    }
    run_ok(workdir)
    for path, digest in digests.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    assert manifest(results / "darks/.work/u8/00016-00031.json")["images"] == []
    for directory in ("darks/f32", "darks/u8", "stacked/u16"):
        assert verify(str(results / directory)) == []
    assert nothing_to_do(workdir)


# --- the real beamline files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    if not (REAL / "PROVENANCE.md").exists():
        pytest.skip(f"real beamline files not found at {REAL} (the shared/ folder beside the repository)")
    workdir = copy_workflow(
        tmp_path_factory.mktemp("real"),
        {
            "defaults": {"shard_size": 4},
            "scans": [
                {
                    "id": 45657,
                    "input": str(REAL / "savu-i12-45657/{scan}.nxs"),
                    "dataset": SAVU,
                    "axis": 1,
                    "bits": [8, 16, 32],
                    "window": {"reference": 3, "percent": 1},
                },
                {
                    "id": 18014,
                    "input": str(REAL / "k11-diad-18014/k11-{scan}.nxs"),
                    "dataset": "/entry/imaging/data",
                    "begin": 100,
                    "stop": 160,
                    "shard_size": 32,
                    "bits": [8, 16],
                    "window": {"lo": 40, "hi": 60430},
                    "windows": {"u16": {"percent": 0.1}},
                },
                {
                    "id": "raw-tiffs",
                    "input": str(REAL / "savu-raw-tiffs"),
                    "input_pattern": "raw_%05d.tiff",
                    "bits": [8],
                    "window": {"percent": 0.5},
                },
                # flats 0..49, darks 50..99, projections 100..119: the window comes from the projections
                {
                    "id": "k11-head",
                    "input": str(REAL / "k11-diad-18014/k11-18014.nxs"),
                    "dataset": "/entry/imaging/data",
                    "stop": 120,
                    "shard_size": 64,
                    "bits": [8],
                    "window": {"percent": 1},
                },
                # the flats of the same images: shards 0-31 and 32-63 hold flats, 64-95 and 96-119 none
                {
                    "id": "k11-flats",
                    "input": str(REAL / "k11-diad-18014/k11-18014.nxs"),
                    "dataset": "/entry/imaging/data",
                    "stop": 120,
                    "keys": "flats",
                    "shard_size": 32,
                    "bits": [8],
                    "window": {"percent": 1},
                },
                # every kind of the same images into its own directory: flats/, darks/, projections/
                {
                    "id": "k11-split",
                    "input": str(REAL / "k11-diad-18014/k11-18014.nxs"),
                    "dataset": "/entry/imaging/data",
                    "stop": 120,
                    "split_keys": True,
                    "shard_size": 64,
                    "bits": [16],
                    "window": {"percent": 1},
                },
            ],
        },
    )
    run_ok(workdir)
    return workdir


@pytest.mark.slow
def test_real_savu_reconstruction(real_run, tmp_path):
    source = REAL / "savu-i12-45657/45657.nxs"
    results = real_run / "results/45657"
    assert sorted(p.name for p in (real_run / "results/45657/.work/u8").iterdir()) == [
        "00000-00003.json",
        "00004-00007.json",
        "00008-00009.json",
    ]
    common = ("-d", SAVU, "-i", "1", "-o", "45657_%05d.tif", source)
    for bits in (8, 16):
        assert_same_as_cli(
            results / f"u{bits}",
            cli_tiffs(tmp_path, "nxs2tiffux", "-u", bits, "--use_ref", "-r", "3", "-p", "1", *common),
        )
    assert_same_as_cli(results / "f32", cli_tiffs(tmp_path, "nxs2tiff", "--fp", *common))
    import h5py

    with h5py.File(source) as file:
        expected = file[SAVU][:, 7, :]
    image, meta = read_tiff(results / "f32/45657_00007.tif")
    assert np.array_equal(image, expected) and meta["index"] == 7
    stats = json.loads((results / "stats.json").read_text())
    assert stats["shape"] == [20, 10, 192] and stats["axis"] == 1 and stats["reference"] == 3
    assert stats["dataset"] == SAVU and stats["source"] == str(source)
    with h5py.File(source) as file:
        reference = file[SAVU][:, 3, :].astype(np.float64)
    assert stats["min"] == reference.min() and stats["max"] == reference.max()
    lo, hi = np.percentile(reference, [1, 99])
    assert stats["windows"]["u8"]["lo"] == stats["percentiles"]["1"] == lo
    assert stats["windows"]["u16"]["hi"] == stats["percentiles"]["99"] == hi


@pytest.mark.slow
def test_real_k11_raw_scan_and_tiff_directory(real_run, tmp_path):
    source = REAL / "k11-diad-18014/k11-18014.nxs"
    common = ("-d", "/entry/imaging/data", "-b", "100", "-s", "160", "-o", "18014_%05d.tif", source)
    assert_same_as_cli(
        real_run / "results/18014/u8",
        cli_tiffs(tmp_path, "nxs2tiffux", "-u", "8", "--lo", "40", "--hi", "60430", *common),
    )
    assert_same_as_cli(
        real_run / "results/18014/u16", cli_tiffs(tmp_path, "nxs2tiffux", "-u", "16", "--use_ref", "-p", "0.1", *common)
    )
    assert sorted(p.name for p in (real_run / "results/18014/.work/u16").iterdir()) == [
        "00100-00127.json",
        "00128-00159.json",
    ]
    assert json.loads((real_run / "results/18014/stats.json").read_text())["reference"] == 130
    head = real_run / "results/k11-head/u8"
    assert_same_as_cli(
        head,
        cli_tiffs(
            tmp_path,
            "nxs2tiffux",
            "-d",
            "/entry/imaging/data",
            "-s",
            "120",
            "-u",
            "8",
            "-p",
            "1",
            "-o",
            "k11-head_%05d.tif",
            source,
        ),
    )
    window = manifest(head / "manifest.json")["window"]
    assert window["reference"] == 110 and manifest(head / "manifest.json")["image_key_path"]
    assert [read_tiff(head / f"k11-head_{i:05d}.tif")[1]["image_key"] for i in (0, 50, 100)] == [1.0, 2.0, 0.0]
    assert_same_as_cli(
        real_run / "results/raw-tiffs/u8",
        cli_tiffs(
            tmp_path,
            "tiff2tiffux",
            "-i",
            "raw_%05d.tiff",
            "-o",
            "raw-tiffs_%05d.tif",
            "-u",
            "8",
            "-p",
            "0.5",
            REAL / "savu-raw-tiffs",
        ),
    )
    assert nothing_to_do(real_run)


@pytest.mark.slow
def test_real_k11_flats(real_run, tmp_path):
    source = REAL / "k11-diad-18014/k11-18014.nxs"
    results = real_run / "results/k11-flats"
    assert_same_as_cli(
        results / "u8",
        cli_tiffs(
            tmp_path,
            "nxs2tiffux",
            "-d",
            "/entry/imaging/data",
            "-s",
            "120",
            "--keys",
            "flats",
            "-u",
            "8",
            "-p",
            "1",
            "-o",
            "k11-flats_%05d.tif",
            source,
        ),
    )
    assert tiff_names(results / "u8") == [f"k11-flats_{i:05d}.tif" for i in range(50)]
    assert manifest(results / "u8/manifest.json")["window"]["reference"] == 110  # the middle projection
    records = {p.name: len(manifest(p)["images"]) for p in (results / ".work/u8").iterdir()}
    assert records == {"00000-00031.json": 32, "00032-00063.json": 18, "00064-00095.json": 0, "00096-00119.json": 0}
    config = read_config(real_run)
    scan = next(scan for scan in config["scans"] if scan["id"] == "k11-flats")
    try:
        scan["keys"] = "darks"
        write_config(real_run, config)
        assert planned_by_scan(real_run) == {"k11-flats": shard_jobs("u8", 0, 32, 64, 96)}
    finally:
        scan["keys"] = "flats"
        write_config(real_run, config)


@pytest.mark.slow
def test_real_k11_split_keys(real_run, tmp_path):
    results = real_run / "results/k11-split/u16"
    out = cli_tiffs(
        tmp_path,
        "nxs2tiffux",
        "-d",
        "/entry/imaging/data",
        "-s",
        "120",
        "--split-keys",
        "-u",
        "16",
        "-p",
        "1",
        "-o",
        "k11-split_%05d.tif",
        REAL / "k11-diad-18014/k11-18014.nxs",
    )
    for kind, indices in (("flats", range(50)), ("darks", range(50, 100)), ("projections", range(100, 120))):
        assert_same_as_cli(results / kind, out / kind)
        assert tiff_names(results / kind) == [f"k11-split_{i:05d}.tif" for i in indices]
    # the darks (50..99) span both shards; the projections (100..119) only the second
    work = real_run / "results/k11-split/.work/u16"
    assert [sorted(p.name for p in (work / kind).iterdir()) for kind in ("darks", "projections")] == [
        ["00000-00063.json", "00064-00119.json"],
        ["00064-00119.json"],
    ]
