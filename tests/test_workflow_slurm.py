"""The profiles, and the demo batch through a real SLURM scheduler with the documented commands.

profiles/default is the workflow profile (Snakemake applies it by itself); profiles/slurm is the
site profile a user installs once into ~/.config/snakemake (INSTALL_SLURM_PROFILE) and then uses
as `snakemake --profile slurm`. The SLURM tests run exactly that install step and that command,
in a temporary XDG_CONFIG_HOME: a single-node cluster (slurmctld, slurmd, munge from Debian; see
slurm_cluster.py) runs on loopback, Snakemake with the SLURM plugin comes from the
`slurm_snakemake` fixture (its own environment), and the installed copy gets only the site
settings this small cluster needs (site_overrides), as a user edits it for their cluster.
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

WORKFLOW = ["Snakefile", "config", "rules", "scripts", "envs", "profiles", "report"]
# The documented install step (profiles/slurm/config.yaml, README), run verbatim from the repository.
INSTALL_SLURM_PROFILE = (
    'mkdir -p "${XDG_CONFIG_HOME:-$HOME/.config}/snakemake/slurm" && '
    'cp -i profiles/slurm/config.yaml "${XDG_CONFIG_HOME:-$HOME/.config}/snakemake/slurm/"'
)
COMMAND = ["--profile", "slurm"]  # after the snakemake executable: `snakemake --profile slurm`


def profile(name: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def site_overrides(cluster: SlurmCluster) -> dict:
    """What this one-node loopback cluster needs in the installed site profile."""
    return {
        "slurm-status-command": "squeue",  # no accounting database here, so no sacct
        "slurm-init-seconds-before-status-checks": 1,
        "seconds-between-status-checks": 1,
        "cores": cluster.cpus,  # caps what a group of shards asks for at the node's CPUs
        "jobs": 4,
        "latency-wait": 5,
        "set-threads": {"shard": 1, "shard_of_kind": 1},
    }


# --- the profiles (no SLURM needed) ------------------------------------------------------------


@pytest.mark.parametrize("site", ["slurm", "local"])
def test_workflow_and_site_profiles_share_no_key(site):
    """Snakemake merges profiles per top-level key, the workflow profile winning: a key in both
    would silently drop the site's value (e.g. a partition under default-resources)."""
    assert set(profile("default")) & set(profile(site)) == set()


def test_the_workflow_profile_holds_the_workflow_settings():
    workflow = profile("default")
    assert workflow["keep-going"] and workflow["rerun-incomplete"] and workflow["retries"] >= 1
    assert set(workflow["groups"].values()) <= set(workflow["group-components"])
    assert {"stats", "window", "shard", "shard_of_kind"} <= set(workflow["set-resources"])
    assert profile("slurm")["executor"] == "slurm" and profile("local") == {"cores": "all"}


def test_the_install_step_is_documented_in_the_slurm_profile():
    assert INSTALL_SLURM_PROFILE in (REPO / "profiles/slurm/config.yaml").read_text()


@pytest.mark.slow
def test_a_plain_dry_run_applies_the_workflow_profile(tmp_path):
    root = copy_workflow(tmp_path / "wf")
    done = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--cores", "2"],
        cwd=root,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-3000:]
    assert "Using workflow specific profile profiles/default for setting default command line arguments" in log
    shard_mem = profile("default")["set-resources"]["shard"]["mem_mb"]
    assert re.search(rf"rule shard:\n(?:\s+\w+: .*\n)*?\s+resources: .*\bmem_mb={shard_mem}\b", log), log[-3000:]


# --- through SLURM ---------------------------------------------------------------------------


# Besides the demo batch: the demo raw scan split by kind, so that shard_of_kind jobs are grouped too
SPLIT_SCAN = {
    "id": "23912-kinds",
    "input": "resources/demo/gda/23912.nxs",
    "split_keys": True,
    "bits": [8],
    "dataset": "/entry1/instrument/pco1_hw_hdf/data",
    "shard_size": 64,
}


def copy_workflow(root: Path) -> Path:
    root.mkdir(parents=True)
    for name in WORKFLOW:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, root / name)
    return root


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, cluster) -> Path:
    """A copy of the workflow whose demo batch (and SPLIT_SCAN) ran locally (--cores 2); results
    kept aside. Needs `cluster` so that where SLURM cannot run nothing runs before the skip."""
    root = copy_workflow(tmp_path_factory.mktemp("wf") / "workflow")
    config = yaml.safe_load((root / "config" / "config.yaml").read_text())
    config["scans"].append(SPLIT_SCAN)
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    local = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2"],
        cwd=root,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert local.returncode == 0, local.stderr[-3000:]
    (root / "results").rename(root / "results-local")
    return root


@pytest.fixture(scope="module")
def slurm_env(tmp_path_factory, cluster, workdir) -> dict[str, str]:
    """The cluster's environment with XDG_CONFIG_HOME in a temporary directory holding the slurm
    profile, installed there by the documented step and edited for this cluster."""
    env = {**cluster.env, "XDG_CONFIG_HOME": str(tmp_path_factory.mktemp("xdg-config"))}
    env.pop("SNAKEMAKE_PROFILE", None)
    subprocess.run(["bash", "-c", INSTALL_SLURM_PROFILE], cwd=workdir, env=env, check=True, stdin=subprocess.DEVNULL)
    installed = Path(env["XDG_CONFIG_HOME"]) / "snakemake" / "slurm" / "config.yaml"
    settings = yaml.safe_load(installed.read_text())
    settings.update(site_overrides(cluster))
    installed.write_text(yaml.safe_dump(settings))
    return env


def outputs(results: Path) -> dict[str, bytes]:
    return {str(p.relative_to(results)): p.read_bytes() for p in sorted(results.rglob("*")) if p.is_file()}


def run_on_slurm(
    snakemake: Path, cluster: SlurmCluster, workdir: Path, env: dict[str, str], cancel_one_shard: bool = False
) -> str:
    """`snakemake --profile slurm` on the batch; optionally scancel one running shard job."""
    process = subprocess.Popen(
        [str(snakemake), *COMMAND],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    cancelled = None
    if cancel_one_shard:
        cancelled = _cancel_a_running_shard_job(cluster, process)
    log = process.communicate(timeout=900)[0]
    assert process.returncode == 0, log[-4000:] + cluster.diagnostics()
    assert "Using profiles slurm and workflow specific profile profiles/default" in log, log[:2000]
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


@pytest.mark.slurm
@pytest.mark.slow
def test_demo_batch_runs_through_slurm_grouped_and_identical_to_local(cluster, slurm_snakemake, workdir, slurm_env):
    log = run_on_slurm(slurm_snakemake, cluster, workdir, slurm_env)
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", log))
    assert submitted, log[-3000:]
    shard_jobs = job_ids_in_logs(workdir, "*/shards/*.log")  # a shard writes every bit depth
    kind_jobs = job_ids_in_logs(workdir, "23912-kinds/shards/*/*.log")  # projections, flats, darks
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


@pytest.mark.slurm
@pytest.mark.slow
def test_a_cancelled_shard_job_is_retried_and_the_batch_completes(cluster, slurm_snakemake, workdir, slurm_env):
    shutil.rmtree(workdir / "results", ignore_errors=True)
    run_on_slurm(slurm_snakemake, cluster, workdir, slurm_env, cancel_one_shard=True)
    assert outputs(workdir / "results") == outputs(workdir / "results-local")
    assert not list((workdir / "results").rglob("*.part"))
