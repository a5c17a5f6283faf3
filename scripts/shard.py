"""Write one shard's images and its record (tomotiff.jobs.shard)."""

from tomotiff_job import run

run(snakemake, lambda jobs, say: jobs.shard(snakemake.params.spec, list(snakemake.input.window),  # noqa: F821
                                            snakemake.threads, say))  # noqa: F821
