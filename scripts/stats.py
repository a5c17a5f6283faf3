"""Statistics of the scan's reference image, with each bit depth's window and each output's clipping
(tomotiff.jobs.stats)."""

from tomotiff_job import run

run(
    snakemake,
    lambda jobs, say: jobs.stats(
        snakemake.params.spec,
        list(snakemake.input.windows),
        list(snakemake.input.manifests),
        snakemake.output[0],
        say,
    ),
)
