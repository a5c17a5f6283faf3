# One report job per scan, from its outputs only (tomotiff.report, as `tomotiff report
# results/SCAN`): the scan's own self-contained report.html, and each figure as a file marked
# for Snakemake's report (category: the scan; subcategory: the bit depth, or depth/kind with
# split_keys), so that `snakemake --report report.html reports` shows the whole batch in
# Snakemake's own viewer. Not in `all`: verify reads every image again. Target: `reports`.

REPORT = "reports/{scan}"
# Each figure of each output is REPORT/FIGURE/PART.png (PART: u8, or u8/flats with split_keys).
FIGURE = {
    name: {
        "patterns": ["{part}.png"],
        "caption": f"../report/{name}.rst",
        "category": "scan {scan}",
        "subcategory": "{part}",
        "labels": {"scan": "{scan}", "output": "{part}", "figure": name},
    }
    for name in ("histogram", "clipping", "thumbnails", "slice")
}


rule report:
    """The scan's report.html and its figures, drawn from its images, manifests and stats.json."""
    input:
        stats=lambda wildcards: stats_path(wildcards.scan),
        manifests=lambda wildcards: [
            manifest_path(wildcards.scan, depth, kind)
            for depth in scan_of(wildcards)["depths"]
            for kind in PLANNER.parts(wildcards.scan)
        ],
    output:
        html=report(
            f"{REPORT}/report.html",
            caption="../report/scan.rst",
            category="scan {scan}",
            subcategory="all outputs",
            labels={"scan": "{scan}", "output": "all", "figure": "report.html"},
        ),
        histogram=report(directory(f"{REPORT}/histogram"), **FIGURE["histogram"]),
        clipping=report(directory(f"{REPORT}/clipping"), **FIGURE["clipping"]),
        thumbnails=report(directory(f"{REPORT}/thumbnails"), **FIGURE["thumbnails"]),
        slice=report(directory(f"{REPORT}/slice"), **FIGURE["slice"]),
    params:
        spec=lambda wildcards: {"id": wildcards.scan, "tomotiff": VERSION},
    log:
        "logs/{scan}/report.log",
    benchmark:
        "logs/benchmarks/{scan}/report.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=1024,
        runtime=30,
    script:
        "../scripts/report.py"
