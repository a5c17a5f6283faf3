"""Choose one bit depth's window, once per scan and depth (tomotiff.jobs.window)."""

from tomotiff_job import run

run(snakemake, lambda jobs, say: jobs.window(snakemake.params.spec, snakemake.output[0], say))
