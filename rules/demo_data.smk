# Small deterministic scans in the layouts beamlines write, so the demo batch runs on a fresh
# clone. Only paths under resources/demo/ match these rules; real inputs are never made here.


rule demo_savu:
    """A Savu-like reconstruction: float32 (height, index, width) at /entry/final_result_tomo/data."""
    output:
        "resources/demo/savu/{name}.nxs",
    params:
        kind="savu",
        tomotiff=VERSION,
    log:
        "logs/demo/savu/{name}.log",
    benchmark:
        "logs/benchmarks/demo/savu/{name}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=512,
        runtime=10,
    script:
        "../scripts/demo_data.py"


rule demo_gda:
    """A GDA-like raw NXtomo scan: uint16 (index, height, width) with darks and flats (image_key)."""
    output:
        "resources/demo/gda/{name}.nxs",
    params:
        kind="gda",
        tomotiff=VERSION,
    log:
        "logs/demo/gda/{name}.log",
    benchmark:
        "logs/benchmarks/demo/gda/{name}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=512,
        runtime=10,
    script:
        "../scripts/demo_data.py"


rule demo_tiffs:
    """A directory of float32 TIFF slices named recon_%05d.tif."""
    output:
        directory("resources/demo/tiff/{name}"),
    params:
        kind="tiff",
        tomotiff=VERSION,
    log:
        "logs/demo/tiff/{name}.log",
    benchmark:
        "logs/benchmarks/demo/tiff/{name}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=512,
        runtime=10,
    script:
        "../scripts/demo_data.py"
