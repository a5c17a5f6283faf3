"""Draw one scan's report and its figures from its outputs (tomotiff.jobs.report)."""

from tomotiff_job import run

run(
    snakemake,
    lambda jobs, say: jobs.report(
        snakemake.params.spec,
        snakemake.input.stats,
        list(snakemake.input.manifests),
        dict(snakemake.output.items()),
        say,
    ),
)
