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
import yaml

from conftest import read_tiff, run_cli
from tomotiff import synthetic
from tomotiff.manifest import verify

REPO = Path(__file__).resolve().parents[1]
REAL = REPO.parent / "shared" / "data" / "real"
WORKFLOW = ["Snakefile", "config", "rules", "scripts", "envs", "profiles"]
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
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True,
                          timeout=timeout, env=env, stdin=subprocess.DEVNULL)


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
            jobs[-1][1] = dict(kv.split("=", 1) for kv in line.strip()[len("wildcards: "):].split(", "))
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


PYPI_NAME = {"python-xxhash": "xxhash"}  # conda-forge name -> PyPI name, where they differ


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
    assert conda == dict(_requirement(dep) for dep in pyproject["dependencies"])
    assert "conda-forge" in env["channels"]


def test_every_rule_has_log_benchmark_conda_and_resources():
    text = "\n".join(p.read_text() for p in sorted((REPO / "rules").glob("*.smk")))
    rules = re.split(r"^(?:rule|checkpoint) ", text, flags=re.M)[1:]
    assert len(rules) >= 7
    for body in rules:
        name = body.split(":")[0]
        for directive in ("log:", "benchmark:", "conda:", "threads:", "resources:", "mem_mb=", "runtime=", "script:"):
            assert f"    {directive}" in body or f"        {directive}" in body, f"rule {name} lacks {directive}"
        assert "shell:" not in body and "run:" not in body, f"rule {name}: user strings must not reach a shell"


def test_profiles():
    local = yaml.safe_load((REPO / "profiles/local/config.yaml").read_text())
    assert local["scheduler"] == "greedy" and local["rerun-incomplete"] and local["printshellcmds"] and "cores" in local
    slurm = yaml.safe_load((REPO / "profiles/slurm/config.yaml").read_text())
    assert slurm["executor"] == "slurm" and slurm["scheduler"] == "greedy" and slurm["rerun-incomplete"]
    for key in ("jobs", "latency-wait", "retries", "groups", "group-components"):
        assert key in slurm, key
    assert {"runtime", "mem_mb"} <= set(slurm["default-resources"])
    assert {"stats", "shard"} <= set(slurm["set-resources"])
    assert slurm["groups"]["shard"] in slurm["group-components"]


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
    expected = {"1001": ["u8", "u16", "f32"], "1002": ["u8", "u16", "f32"], "1003": ["u8", "u16", "f32"],
                "23912": ["u8"], "87637": ["u8", "u16"]}
    assert sorted(p.name for p in results.iterdir()) == sorted(expected)
    for scan, depths in expected.items():
        assert sorted(p.name for p in (results / scan).iterdir() if not p.name.startswith(".")) == sorted(
            ["stats.json", *depths])
        for depth in depths:
            assert verify(str(results / scan / depth)) == []
    savu = demo / "resources/demo/savu/1002.nxs"
    common = ("-d", SAVU, "-i", "1", "-o", "1002_%05d.tif", savu)
    assert_same_as_cli(results / "1002/u8", cli_tiffs(tmp_path, "nxs2tiffux", "-u", "8", "--use_ref", "-p", "0.1", *common))
    assert_same_as_cli(results / "1002/u16", cli_tiffs(tmp_path, "nxs2tiffux", "-u", "16", "-p", "0.1", *common))
    assert_same_as_cli(results / "1002/f32", cli_tiffs(tmp_path, "nxs2tiff", "--fp", *common))
    raw = cli_tiffs(tmp_path, "nxs2tiffux", "-d", GDA, "-b", "4", "-s", "124", "-u", "8", "--lo", "0", "--hi", "40000",
                    "-o", "p_23912_%05d.tif", demo / "resources/demo/gda/23912.nxs")
    assert_same_as_cli(results / "23912/u8", raw)
    tiffs = cli_tiffs(tmp_path, "tiff2tiffux", "-i", "recon_%05d.tif", "-o", "87637_%05d.tif", "-u", "16", "--use_ref",
                      "-r", "10", "-p", "1", demo / "resources/demo/tiff/87637")
    assert_same_as_cli(results / "87637/u16", tiffs)
    assert read_tiff(results / "23912/u8/p_23912_00004.tif")[1]["image_key"] == 0.0  # a raw scan: keys recorded
    names = sorted(p.name for p in (results / "23912/u8").iterdir())
    assert names == ["manifest.json", *[f"p_23912_{i:05d}.tif" for i in range(4, 124)]]


@pytest.mark.slow
def test_demo_stats_json(demo):
    stats = json.loads((demo / "results/1001/stats.json").read_text())
    for key in ("shape", "dtype", "axis", "range", "reference", "min", "max", "mean", "percentiles", "histogram",
                "windows", "source", "dataset", "tomotiff_version"):
        assert key in stats, key
    assert stats["shape"] == [48, 64, 48] and stats["axis"] == 1 and stats["dtype"] == "float32"
    assert stats["range"] == {"begin": 0, "stop": 64, "count": 64} and stats["reference"] == 32
    assert {"0", "0.1", "1", "50", "99", "99.9", "100"} <= set(stats["percentiles"])
    assert sum(stats["histogram"]["counts"]) == 48 * 48
    window = manifest(demo / "results/1001/u8/manifest.json")["window"]
    assert stats["windows"]["u8"] == stats["windows"]["u16"] == window
    assert (window["lo"], window["hi"]) == (stats["percentiles"]["0.1"], stats["percentiles"]["99.9"])
    raw = json.loads((demo / "results/23912/stats.json").read_text())
    assert raw["dtype"] == "uint16" and raw["reference"] == 4 + 120 // 2 and raw["windows"]["u8"]["method"] == "explicit"


@pytest.mark.slow
def test_1_second_run_does_nothing(demo):
    assert nothing_to_do(demo)
    done = snakemake(demo, "--dry-run", "--profile", "profiles/local")
    assert done.returncode == 0 and "Nothing to be done" in done.stdout + done.stderr, done.stderr


@pytest.mark.slow
def test_logs_and_benchmarks_and_no_stray_files(demo):
    assert stray_files(demo / "results") == []
    logs = {p.relative_to(demo / "logs").as_posix() for p in (demo / "logs").rglob("*") if p.is_file()}
    assert {"1001/stats.log", "1001/window-u16.log", "1001/u8/00000-00031.log", "1001/manifest-f32.log",
            "benchmarks/1001/u8/00032-00063.tsv", "demo/savu/1001.log"} <= logs
    assert "window: lo=" in (demo / "logs/1001/u8/00000-00031.log").read_text()


@pytest.mark.slow
def test_2_adding_a_scan_runs_only_its_jobs(demo, tmp_path):
    workdir = demo
    config = read_config(workdir)
    config["scans"].append({"id": 1004, "input": "resources/demo/savu/{scan}.nxs", "dataset": SAVU, "axis": 1,
                            "stop": 40, "bits": [16, 32]})
    write_config(workdir, config)
    jobs = planned(workdir)
    assert {rule for rule, _ in jobs} == {"demo_savu", "window", "stats", "shard", "manifest", "all"}
    assert all(w.get("scan", w.get("name")) == "1004" for rule, w in jobs if rule != "all")
    assert sorted((w["depth"], w["first"]) for rule, w in jobs if rule == "shard") == [
        ("f32", "00000"), ("f32", "00032"), ("u16", "00000"), ("u16", "00032")]
    before = snapshot(workdir)
    run_ok(workdir)
    assert all(path.startswith("results/1004/") for path in changed(before, snapshot(workdir)))
    assert_same_as_cli(workdir / "results/1004/u16", cli_tiffs(
        tmp_path, "nxs2tiffux", "-d", SAVU, "-i", "1", "-s", "40", "-u", "16", "-p", "0.1", "-o", "1004_%05d.tif",
        workdir / "resources/demo/savu/1004.nxs"))
    assert nothing_to_do(workdir)


@pytest.mark.slow
def test_3_changing_a_window_or_the_bit_depths_reruns_only_what_they_affect(demo, tmp_path):
    workdir = demo
    config = read_config(workdir)
    raw, recon, tiffs = config["scans"][1], config["scans"][0], config["scans"][2]
    assert (raw["id"], recon["id"], tiffs["id"]) == (23912, "1001-1003", 87637)
    raw["window"] = {"lo": 1000, "hi": 35000}  # a known range: the dry run lists every job
    recon["windows"] = {"u16": {"percent": 1}}  # only the 16-bit images of 1001..1003
    tiffs["bits"] = [8, 16, 32]  # adds float32, keeps the others
    write_config(workdir, config)
    jobs = planned(workdir)
    raw_jobs = sorted((rule, w.get("depth", ""), w.get("first", "")) for rule, w in jobs if w.get("scan") == "23912")
    assert raw_jobs == [("manifest", "u8", ""), ("shard", "u8", "00004"), ("shard", "u8", "00032"),
                        ("shard", "u8", "00064"), ("shard", "u8", "00096"), ("stats", "", ""), ("window", "u8", "")]
    assert not [w for rule, w in jobs if w.get("scan") == "87637" and (rule != "shard" and rule != "manifest")]
    assert {w.get("depth") for rule, w in jobs if w.get("scan") == "87637"} == {"f32"}
    before = snapshot(workdir)
    run_ok(workdir)
    rewritten = changed(before, snapshot(workdir))
    by_place = {os.path.dirname(path).replace("/.work", "") for path in rewritten}
    assert by_place == {"results/23912", "results/23912/u8", "results/87637/f32",
                        *(f"results/{scan}{sub}" for scan in ("1001", "1002", "1003") for sub in ("", "/u16"))}
    assert_same_as_cli(workdir / "results/23912/u8", cli_tiffs(
        tmp_path, "nxs2tiffux", "-d", GDA, "-b", "4", "-s", "124", "-u", "8", "--lo", "1000", "--hi", "35000",
        "-o", "p_23912_%05d.tif", workdir / "resources/demo/gda/23912.nxs"))
    assert_same_as_cli(workdir / "results/1003/u16", cli_tiffs(
        tmp_path, "nxs2tiffux", "-d", SAVU, "-i", "1", "-u", "16", "-p", "1", "-o", "1003_%05d.tif",
        workdir / "resources/demo/savu/1003.nxs"))
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
        ("all", "", "", ""), ("manifest", "1002", "u16", ""), ("manifest", "23912", "u8", ""),
        ("shard", "1002", "u16", "00000"), ("shard", "23912", "u8", "00032")]
    before = snapshot(workdir)
    run_ok(workdir)
    for path, digest in digests.items():
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
    rewritten = {Path(p).name for p in changed(before, snapshot(workdir))}
    assert rewritten == {"manifest.json", "00000-00031.json", "00032-00063.json",
                         *(f"p_23912_{i:05d}.tif" for i in range(32, 64)), *(f"1002_{i:05d}.tif" for i in range(32))}
    assert verify(str(workdir / "results/23912/u8")) == [] and verify(str(workdir / "results/1002/u16")) == []
    assert nothing_to_do(workdir)


@pytest.mark.slow
def test_7_a_new_tomotiff_version_is_a_parameter_change(demo, tmp_path):
    """A dist-info earlier on sys.path makes importlib.metadata (and so tomotiff.__version__) see
    tomotiff 99.0; the workflow must then rerun everything tomotiff computes."""
    fake = tmp_path / "site" / "tomotiff-99.0.dist-info"
    fake.mkdir(parents=True)
    (fake / "METADATA").write_text("Metadata-Version: 2.1\nName: tomotiff\nVersion: 99.0\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), os.environ.get("PYTHONPATH", "")])}
    done = snakemake(demo, "--dry-run", "--cores", "2", env=env)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert "Params have changed" in output and "99.0" in output
    jobs = planned(demo, env=env)
    assert {"demo_savu", "demo_gda", "demo_tiffs", "window", "stats", "shard", "manifest"} <= {r for r, _ in jobs}
    assert len([1 for rule, w in jobs if rule == "shard" and w["scan"] == "23912"]) == 4
    assert nothing_to_do(demo)  # the real version again: still up to date


# --- killed runs, bad inputs ---------------------------------------------------------------------


@pytest.mark.slow
def test_5_sigkill_in_a_shard_then_rerun_incomplete(tmp_path):
    workdir = copy_workflow(tmp_path / "wf", {
        "shard_threads": 1,
        "defaults": {"bits": [16], "shard_size": 1000},
        "scans": [{"id": "big", "input": "data/big.nxs", "dataset": SAVU, "axis": 1, "stop": 1000}],
    })
    synthetic.write_savu_recon(str(workdir / "data/big.nxs"), height=128, count=1000, width=128, chunks=(128, 1, 128))
    out, record = workdir / "results/big/u16", workdir / "results/big/.work/u16/00000-00999.json"
    process = subprocess.Popen([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=workdir, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
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

    done = run_ok(workdir, "--rerun-incomplete")
    assert "removed the Snakemake locks left by a killed run" in done.stdout + done.stderr
    assert stray_files(workdir / "results") == []
    assert_same_as_cli(out, cli_tiffs(tmp_path, "nxs2tiffux", "-d", SAVU, "-i", "1", "-s", "1000", "-u", "16",
                                      "-o", "big_%05d.tif", workdir / "data/big.nxs"))
    assert nothing_to_do(workdir)


@pytest.mark.slow
def test_6_bad_inputs_fail_naming_the_scan_and_the_others_finish(tmp_path):
    workdir = copy_workflow(tmp_path / "wf", {
        "defaults": {"bits": [8, 32], "shard_size": 32},
        "scans": [
            {"id": "good", "input": "resources/demo/savu/good.nxs", "dataset": SAVU, "axis": 1},
            {"id": "nofile", "input": "missing/{scan}.nxs", "stop": 20},
            {"id": "nodset", "input": "resources/demo/savu/good.nxs", "dataset": "/entry/nothing", "axis": 1},
            {"id": "notiffs", "input": "missing-dir", "input_pattern": "x_%03d.tif"},
        ],
    })
    done = snakemake(workdir, "--cores", "2", "--keep-going")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "scan nofile: input file not found: missing/nofile.nxs" in output
    assert "scan nodset: dataset '/entry/nothing' not found in resources/demo/savu/good.nxs" in output
    assert "scan notiffs: input directory not found: missing-dir" in output
    assert "scan nodset: dataset '/entry/nothing' not found" in (workdir / "logs/nodset/window-u8.log").read_text()
    for depth in ("u8", "f32"):
        assert verify(str(workdir / f"results/good/{depth}")) == []
    assert (workdir / "results/good/stats.json").exists()
    assert not (workdir / "results/nofile").exists() or not list((workdir / "results/nofile").rglob("*.tif"))


# --- the configuration -------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("scan, expected", [
    ({"id": 5, "input": "a.nxs", "windw": {"lo": 1}}, "scan 5 (scans[0]): Additional properties are not allowed ('windw'"),
    ({"id": "../etc", "input": "a.nxs"}, "scan ../etc (scans[0]): id: '../etc' is not valid"),
    ({"id": "a..b", "input": "a.nxs"}, "scan a..b (scans[0]): id:"),
    ({"id": "a/b", "input": "a.nxs"}, "scan a/b (scans[0]): id:"),
    ({"id": 5, "input": "a.nxs", "output_pattern": "../{scan}_%05d.tif"}, "scan 5 (scans[0]): output_pattern"),
    ({"id": 5, "input": "a.nxs", "output_pattern": "x_%s.tif"}, "scan 5 (scans[0]): output_pattern 'x_%s.tif' must"),
    ({"id": 5, "input": "a.nxs", "bits": [8, 12]}, "scan 5 (scans[0]): bits.1: 12 is not one of [8, 16, 32]"),
    ({"id": 5, "input": "a.nxs", "axis": "1"}, "scan 5 (scans[0]): axis: '1' is not of type 'integer'"),
    ({"id": 5, "input": "a.nxs", "window": {"lo": 2, "hi": 1}}, "scan 5 (scans[0]): window of u8: hi (1) must be"),
    ({"id": 5, "input": "{scan}/{run}.nxs"}, "scan 5 (scans[0]): input '{scan}/{run}.nxs': the only placeholder"),
    ({"id": "9-7", "input": "a.nxs"}, "scan 9-7 (scans[0]): id range 9-7 ends before it starts"),
])
def test_config_errors_name_the_key_and_the_scan(tmp_path, scan, expected):
    workdir = copy_workflow(tmp_path, {"scans": [scan]})
    done = snakemake(workdir, "--dry-run", "--cores", "1")
    output = done.stdout + done.stderr
    assert done.returncode != 0 and expected in output, output[-3000:]
    assert not (workdir / "results").exists()


@pytest.mark.slow
def test_config_defaults_ranges_templates_and_duplicates(tmp_path):
    workdir = copy_workflow(tmp_path, {
        "defaults": {"shard_size": 50, "dataset": "/entry/data", "bitz": [8]},
        "scans": [{"id": 1, "input": "a.nxs"}],
    })
    assert "config: defaults: Additional properties are not allowed ('bitz'" in output_of(workdir)
    write_config(workdir, {
        "defaults": {"shard_size": 50, "dataset": "/entry/data", "stop": 120},
        "scans": [{"id": "0098-0101", "input": "/dls/i13/data/2017/cm16786-1/raw/{scan}.nxs"},
                  {"id": "tiffs", "input": "slices/{scan}", "input_pattern": "recon_{scan}_%05d.tif", "stop": 10}],
    })
    jobs = planned(workdir)
    assert {w["scan"] for rule, w in jobs if rule == "stats"} == {"0098", "0099", "0100", "0101", "tiffs"}
    assert sorted(w["first"] for rule, w in jobs if rule == "shard" and w["scan"] == "0100") == ["00000", "00050",
                                                                                                    "00100"]
    assert {(w["scan"], w["depth"]) for rule, w in jobs if rule == "manifest"} == {
        (s, "u8") for s in ("0098", "0099", "0100", "0101", "tiffs")}  # the default bit depth is 8
    write_config(workdir, {"scans": [{"id": "5-7", "input": "a.nxs"}, {"id": 6, "input": "b.nxs"}]})
    assert "config: scan 6 (scans[1]): scan 6 is also listed in scans[0]" in output_of(workdir)


@pytest.mark.slow
def test_a_configfile_replaces_the_demo_batch(tmp_path):
    workdir = copy_workflow(tmp_path)
    (tmp_path / "batch.yaml").write_text(yaml.safe_dump(
        {"scans": [{"id": 5, "input": "resources/demo/gda/{scan}.nxs", "dataset": GDA, "stop": 10}]}))
    jobs = planned(workdir, "--configfile", str(tmp_path / "batch.yaml"))
    assert {w.get("scan", w.get("name")) for rule, w in jobs if rule != "all"} == {"5"}


# --- the real beamline files --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_run(tmp_path_factory) -> Path:
    if not (REAL / "PROVENANCE.md").exists():
        pytest.skip(f"real beamline files not found at {REAL} (the shared/ folder beside the repository)")
    workdir = copy_workflow(tmp_path_factory.mktemp("real"), {
        "defaults": {"shard_size": 4},
        "scans": [
            {"id": 45657, "input": str(REAL / "savu-i12-45657/{scan}.nxs"), "dataset": SAVU, "axis": 1,
             "bits": [8, 16, 32], "window": {"reference": 3, "percent": 1}},
            {"id": 18014, "input": str(REAL / "k11-diad-18014/k11-{scan}.nxs"), "dataset": "/entry/imaging/data",
             "begin": 100, "stop": 160, "shard_size": 32, "bits": [8, 16], "window": {"lo": 40, "hi": 60430},
             "windows": {"u16": {"percent": 0.1}}},
            {"id": "raw-tiffs", "input": str(REAL / "savu-raw-tiffs"), "input_pattern": "raw_%05d.tiff",
             "bits": [8], "window": {"percent": 0.5}},
            # flats 0..49, darks 50..99, projections 100..119: the window comes from the projections
            {"id": "k11-head", "input": str(REAL / "k11-diad-18014/k11-18014.nxs"), "dataset": "/entry/imaging/data",
             "stop": 120, "shard_size": 64, "bits": [8], "window": {"percent": 1}},
        ],
    })
    run_ok(workdir)
    return workdir


@pytest.mark.slow
def test_real_savu_reconstruction(real_run, tmp_path):
    source = REAL / "savu-i12-45657/45657.nxs"
    results = real_run / "results/45657"
    assert sorted(p.name for p in (real_run / "results/45657/.work/u8").iterdir()) == [
        "00000-00003.json", "00004-00007.json", "00008-00009.json"]
    common = ("-d", SAVU, "-i", "1", "-o", "45657_%05d.tif", source)
    for bits in (8, 16):
        assert_same_as_cli(results / f"u{bits}", cli_tiffs(
            tmp_path, "nxs2tiffux", "-u", bits, "--use_ref", "-r", "3", "-p", "1", *common))
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
    assert_same_as_cli(real_run / "results/18014/u8", cli_tiffs(
        tmp_path, "nxs2tiffux", "-u", "8", "--lo", "40", "--hi", "60430", *common))
    assert_same_as_cli(real_run / "results/18014/u16", cli_tiffs(
        tmp_path, "nxs2tiffux", "-u", "16", "--use_ref", "-p", "0.1", *common))
    assert sorted(p.name for p in (real_run / "results/18014/.work/u16").iterdir()) == [
        "00100-00127.json", "00128-00159.json"]
    assert json.loads((real_run / "results/18014/stats.json").read_text())["reference"] == 130
    head = real_run / "results/k11-head/u8"
    assert_same_as_cli(head, cli_tiffs(tmp_path, "nxs2tiffux", "-d", "/entry/imaging/data", "-s", "120", "-u", "8",
                                       "-p", "1", "-o", "k11-head_%05d.tif", source))
    window = manifest(head / "manifest.json")["window"]
    assert window["reference"] == 110 and manifest(head / "manifest.json")["image_key_path"]
    assert [read_tiff(head / f"k11-head_{i:05d}.tif")[1]["image_key"] for i in (0, 50, 100)] == [1.0, 2.0, 0.0]
    assert_same_as_cli(real_run / "results/raw-tiffs/u8", cli_tiffs(
        tmp_path, "tiff2tiffux", "-i", "raw_%05d.tiff", "-o", "raw-tiffs_%05d.tif", "-u", "8", "-p", "0.5",
        REAL / "savu-raw-tiffs"))
    assert nothing_to_do(real_run)
