"""The demo batch through a real SLURM scheduler: `snakemake --profile profiles/slurm`.

A single-node cluster (slurmctld, slurmd, munge from Debian; see slurm_cluster.py) runs on
loopback; Snakemake with the SLURM plugin comes from the `slurm_snakemake` fixture (its own
environment). The test profile is profiles/slurm/config.yaml with only the overrides this
small cluster needs.
"""

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO
from slurm_cluster import SlurmCluster

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

WORKFLOW = ["Snakefile", "config", "rules", "scripts", "envs", "profiles"]
TEST_OVERRIDES = {
    "slurm-status-command": "squeue",  # no accounting database here, so no sacct
    "slurm-init-seconds-before-status-checks": 1,
    "seconds-between-status-checks": 1,
    "cores": 2,  # the node's CPUs: caps what a group of shards asks for
    "jobs": 4,
    "latency-wait": 5,
    "default-resources": {"runtime": 10, "mem_mb": 300},
    "set-resources": {rule: {"runtime": 10, "mem_mb": 300} for rule in ("stats", "window", "shard", "shard_of_kind")},
    "set-threads": {"shard": 1, "shard_of_kind": 1},
    "group-components": {"shards": 4},
}


# Besides the demo batch: the demo raw scan split by kind, so that shard_of_kind jobs are grouped too
SPLIT_SCAN = {"id": "23912-kinds", "input": "resources/demo/gda/23912.nxs", "split_keys": True, "bits": [8],
              "dataset": "/entry1/instrument/pco1_hw_hdf/data", "shard_size": 64}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """A copy of the workflow whose demo batch (and SPLIT_SCAN) ran locally (--cores 2); results kept aside."""
    root = tmp_path_factory.mktemp("wf")
    for name in WORKFLOW:
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["scans"].append(SPLIT_SCAN)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    profile = yaml.safe_load((root / "profiles" / "slurm" / "config.yaml").read_text())
    profile.update(TEST_OVERRIDES)
    (root / "profiles" / "slurm-test").mkdir()
    (root / "profiles" / "slurm-test" / "config.yaml").write_text(yaml.safe_dump(profile))
    local = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "2"], cwd=root, capture_output=True, text=True)
    assert local.returncode == 0, local.stderr[-3000:]
    (root / "results").rename(root / "results-local")
    return root


def outputs(results: Path) -> dict[str, bytes]:
    return {str(p.relative_to(results)): p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file()}


def run_on_slurm(snakemake: Path, cluster: SlurmCluster, workdir: Path, cancel_one_shard: bool = False) -> str:
    """Run the demo batch with the slurm profile; optionally scancel one running shard job."""
    command = [str(snakemake), "--profile", "profiles/slurm-test"]
    process = subprocess.Popen(command, cwd=workdir, env=cluster.env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    cancelled = None
    if cancel_one_shard:
        cancelled = _cancel_a_running_shard_job(cluster, process)
    log = process.communicate(timeout=900)[0]
    assert process.returncode == 0, log[-4000:] + cluster.diagnostics()
    if cancel_one_shard:
        assert cancelled is not None, "no shard job was seen running to cancel"
        assert re.search(r"[Ee]rror|fail|CANCELLED", log), log[-4000:]
    return log


def _cancel_a_running_shard_job(cluster: SlurmCluster, process: subprocess.Popen) -> int | None:
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        listing = cluster.run("squeue", "-h", "-t", "RUNNING", "-o", "%i %k").stdout.split("\n")
        shard_jobs = [line.split()[0] for line in listing if "shard" in line]
        if shard_jobs:
            time.sleep(0.5)  # let it start writing
            cluster.cancel(int(shard_jobs[0]))
            return int(shard_jobs[0])
        time.sleep(0.2)
    return None


def job_ids_in_logs(workdir: Path, pattern: str) -> dict[str, str]:
    """The SLURM job id each job's log recorded (tomotiff_job.py writes it first)."""
    found = {}
    for log in (workdir / "logs").glob(pattern):
        match = re.search(r"SLURM job (\d+)", log.read_text())
        found[str(log.relative_to(workdir))] = match.group(1) if match else "none"
    return found


def test_demo_batch_runs_through_slurm_grouped_and_identical_to_local(slurm_snakemake, cluster, workdir):
    log = run_on_slurm(slurm_snakemake, cluster, workdir)
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    assert submitted, log[-3000:]
    shard_jobs = job_ids_in_logs(workdir, "*/u*/*.log") | job_ids_in_logs(workdir, "*/f32/*.log")
    kind_jobs = job_ids_in_logs(workdir, "23912-kinds/u8/*/*.log")  # projections, flats, darks
    stats_jobs = job_ids_in_logs(workdir, "*/stats.log")
    assert shard_jobs and stats_jobs and len(kind_jobs) == 6, kind_jobs
    for job, slurm_id in {**shard_jobs, **kind_jobs, **stats_jobs}.items():
        assert slurm_id in submitted, f"{job} did not run in a SLURM job Snakemake submitted ({slurm_id})"
    completed = {str(job) for job, state in cluster.jobs_seen().items() if state == "completed"}
    assert submitted <= completed, (submitted - completed, cluster.diagnostics())
    # Shards share allocations; shard_of_kind jobs join the same groups (possibly beside plain shards)
    allocations = list(shard_jobs.values()) + list(kind_jobs.values())
    assert max(allocations.count(slurm_id) for slurm_id in set(allocations)) >= 2, "no SLURM job ran several shards"
    assert max(allocations.count(slurm_id) for slurm_id in kind_jobs.values()) >= 2, "no shard_of_kind job was grouped"
    assert outputs(workdir / "results") == outputs(workdir / "results-local")


def test_a_cancelled_shard_job_is_retried_and_the_batch_completes(slurm_snakemake, cluster, workdir):
    shutil.rmtree(workdir / "results", ignore_errors=True)
    run_on_slurm(slurm_snakemake, cluster, workdir, cancel_one_shard=True)
    assert outputs(workdir / "results") == outputs(workdir / "results-local")
    assert not list((workdir / "results").rglob("*.part"))
