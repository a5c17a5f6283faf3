"""Merge a scan's shard records into its manifest.json (tomotiff.jobs.merge)."""

from tomotiff_job import run

run(
    snakemake,
    lambda jobs, say: jobs.merge(
        snakemake.params.spec,
        list(snakemake.input),
        snakemake.output[0],
        say,
    ),
)
