"""End-to-end check that the loopback SLURM cluster runs plain and Snakemake jobs.

Needs root and the packages from ``.ci/install-slurm.sh``; skips otherwise.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import textwrap
from pathlib import Path

import pytest

from slurm_cluster import SlurmCluster

pytestmark = pytest.mark.slurm

SNAKEFILE = textwrap.dedent(
    """\
    SAMPLES = ["a", "b", "c"]

    rule all:
        input:
            "summary.txt",

    # write -> upper per sample is one connected group component; the test
    # packs all three components into one SLURM allocation.
    rule write:
        output:
            "parts/{sample}.txt",
        group:
            "parts"
        shell:
            "echo {wildcards.sample} > {output}"

    rule upper:
        input:
            "parts/{sample}.txt",
        output:
            "upper/{sample}.txt",
        group:
            "parts"
        shell:
            "tr a-z A-Z < {input} > {output}"

    rule combine:
        input:
            expand("upper/{sample}.txt", sample=SAMPLES),
        output:
            "summary.txt",
        shell:
            "cat {input} > {output}; hostname >> {output}"
    """
)

# What Snakemake needs to use this cluster (see slurm_cluster's docstring).
# Status checks start after 1 s; the plugin then adds 10 s after every check
# that finds nothing finished, so longer initial intervals only make it slower.
SNAKEMAKE_SLURM_ARGS = shlex.split(
    "--executor slurm --jobs 4 --default-resources mem_mb=100 runtime=5"
    " --slurm-status-command squeue"
    " --slurm-init-seconds-before-status-checks 1 --seconds-between-status-checks 1"
)


def snakemake_args(cluster: SlurmCluster) -> list[str]:
    """Plugin options plus the group settings this workflow needs.

    ``--group-components parts=3`` merges the three unconnected write->upper
    chains into one allocation; ``--cores`` caps that allocation's CPUs at the
    node's, as a group otherwise asks for the sum of its parallel jobs' cores
    and the submission is rejected (EnforcePartLimits=ALL).
    """
    return [*SNAKEMAKE_SLURM_ARGS, "--group-components", "parts=3", "--cores", str(cluster.cpus)]


def test_sbatch_job_completes(cluster: SlurmCluster, tmp_path: Path) -> None:
    submitted = cluster.run("sbatch", "--parsable", f"--chdir={tmp_path}", "--wrap", "hostname")
    job_id = int(submitted.stdout.strip().split(";")[0])

    assert cluster.wait_job(job_id, timeout=60) == "COMPLETED", cluster.diagnostics()
    assert (tmp_path / f"slurm-{job_id}.out").read_text().strip() == cluster.hostname
    assert cluster.jobs_seen()[job_id] == "completed"


def test_snakemake_workflow_runs_through_slurm(slurm_snakemake: Path, cluster: SlurmCluster, tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    before = set(cluster.jobs_seen())

    result = subprocess.run(
        [str(slurm_snakemake), *snakemake_args(cluster)],
        check=False,
        cwd=tmp_path,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=300,
    )

    log = result.stdout + result.stderr
    assert result.returncode == 0, f"{log}\n{cluster.diagnostics()}"
    summary = (tmp_path / "summary.txt").read_text().split()
    assert summary == ["A", "B", "C", cluster.hostname]
    submitted = {int(job_id) for job_id in re.findall(r"submitted with SLURM jobid (\d+)", log)}
    # One allocation for the whole group, one for combine.
    assert len(submitted) == 2, log
    seen = cluster.jobs_seen()
    assert {job_id: seen.get(job_id) for job_id in submitted} == dict.fromkeys(submitted, "completed")
    assert submitted.isdisjoint(before)
