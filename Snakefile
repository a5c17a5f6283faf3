"""tomotiff batch workflow: many scans to TIFF images, one command.

    snakemake --cores 2                      # the demo batch in config/config.yaml
    snakemake --profile profiles/local       # every core of this machine
    snakemake --profile slurm                # on SLURM, once profiles/slurm is installed (README)
    snakemake --configfile batch.yaml ...    # your own batch (replaces config/config.yaml)
    snakemake --cores 2 reports              # each scan's figures and report.html, in reports/{scan}/
    snakemake --report report.html reports   # then the batch in Snakemake's own report (or report.zip)

Outputs per scan: results/{scan}/stats.json and results/{scan}/{u8,u16,f32}/ (TIFFs plus
manifest.json; with split_keys, in projections/, flats/ and darks/ below each). See README ("Many scans")
and config/README.md. profiles/default, the workflow profile, applies to every run.
"""

from snakemake.utils import min_version

min_version("9.0")

# --configfile replaces the demo batch instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/demo_data.smk"
include: "rules/stats.smk"
include: "rules/shards.smk"
include: "rules/manifest.smk"
include: "rules/report.smk"


localrules:
    all,
    manifest,
    manifest_of_kind,
    reports,


rule all:
    default_target: True
    input:
        final_outputs,


# Not part of `all`: drawing the report reads every image again (verify checks each checksum).
rule reports:
    input:
        expand("reports/{scan}/report.html", scan=list(SCANS)),
