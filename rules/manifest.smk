# One manifest.json per scan and bit depth, merged from the shard manifests: every image
# (index, file, xxh3_128) with the source and the window, as the CLI's manifest.json.


rule manifest:
    input:
        shard_manifests,
    output:
        MANIFEST,
    params:
        spec=manifest_params,
    log:
        "logs/{scan}/manifest-{depth}.log",
    benchmark:
        "logs/benchmarks/{scan}/manifest-{depth}.tsv"
    conda:
        ENV
    threads: 1
    resources:
        mem_mb=256,
        runtime=5,
    script:
        "../scripts/manifest.py"


# With split_keys: one manifest.json per kind of image, in results/{scan}/{depth}/{kind}/.
use rule manifest as manifest_of_kind with:
    output:
        KIND_MANIFEST,
    log:
        "logs/{scan}/manifest-{depth}-{kind}.log",
    benchmark:
        "logs/benchmarks/{scan}/manifest-{depth}-{kind}.tsv"
