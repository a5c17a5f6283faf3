# The window of each quantised bit depth, decided once per scan, and the reference image's
# statistics with the clipping of every output. Each depth's window is its own small job, so changing the 16-bit window (or
# adding a bit depth) does not rewrite the 8-bit images.


rule window:
    """lo/hi of one bit depth, exactly as nxs2tiffux/tiff2tiffux would choose them."""
    input:
        source=source_input,
    output:
        WINDOW,
    wildcard_constraints:
        depth="u8|u16",
    params:
        spec=window_params,
    log:
        "logs/{scan}/window-{depth}.log",
    benchmark:
        "logs/benchmarks/{scan}/window-{depth}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    script:
        "../scripts/window.py"


rule stats:
    """Shape, range and statistics of the reference image, the window of each bit depth, and the
    clipping of each quantised output (from its manifest: so stats.json comes last)."""
    input:
        source=source_input,
        windows=stats_windows,
        manifests=stats_manifests,
    output:
        STATS,
    params:
        spec=stats_params,
    log:
        "logs/{scan}/stats.log",
    benchmark:
        "logs/benchmarks/{scan}/stats.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=2048,
        runtime=10,
    script:
        "../scripts/stats.py"
