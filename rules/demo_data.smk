# Small deterministic scans in the layouts beamlines write, so the demo batch runs on a fresh
# clone (tomotiff.synthetic.DEMO_SIZES). Only paths under resources/demo/ match these rules.


rule demo_hdf5:
    """A Savu-like reconstruction (savu: float32 (height, index, width)) or a GDA-like raw NXtomo
    scan (gda: uint16 (index, height, width) with darks and flats marked by image_key)."""
    output:
        "resources/demo/{demo}/{name}.nxs",
    wildcard_constraints:
        demo="savu|gda",
    params:
        kind=lambda wildcards: wildcards.demo,
        tomotiff=VERSION,
    log:
        "logs/demo/{demo}/{name}.log",
    benchmark:
        "logs/benchmarks/demo/{demo}/{name}.tsv"
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
