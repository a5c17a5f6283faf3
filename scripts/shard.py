"""Write one shard's images at every bit depth from one read, and its receipt (tomotiff.jobs.shard)."""

from tomotiff_job import run

run(
    snakemake,
    lambda jobs, say: jobs.shard(
        snakemake.params.spec,
        list(snakemake.input.windows),
        snakemake.output[0],
        snakemake.threads,
        say,
    ),
)
