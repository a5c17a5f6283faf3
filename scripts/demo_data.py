"""Write one small deterministic demo scan, seeded by its name (tomotiff.jobs.demo)."""

from tomotiff_job import run

run(
    snakemake,
    lambda jobs, say: jobs.demo(
        snakemake.params.kind,
        snakemake.wildcards.name,
        snakemake.output[0],
        say,
    ),
)
