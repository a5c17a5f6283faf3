# One job per shard: images first..last of one scan at one bit depth, written into
# results/{scan}/{depth}/. The TIFFs are not declared outputs (a directory() output would
# clash with the other shards writing there); the shard's own manifest is.


rule shard:
    """Write images first..last with the library's extract(), as the CLI would."""
    input:
        source=source_input,
        window=shard_window,
    output:
        SHARD,
    params:
        spec=shard_params,
    log:
        "logs/{scan}/{depth}/{first}-{last}.log",
    benchmark:
        "logs/benchmarks/{scan}/{depth}/{first}-{last}.tsv"
    conda:
        ENV
    threads: config["shard_threads"]
    resources:
        mem_mb=lambda wildcards, threads: 512 + 256 * threads,
        runtime=60,
    script:
        "../scripts/shard.py"


# With split_keys: the same job for one kind of image, into results/{scan}/{depth}/{kind}/.
use rule shard as shard_of_kind with:
    output:
        KIND_SHARD,
    log:
        "logs/{scan}/{depth}/{kind}/{first}-{last}.log",
    benchmark:
        "logs/benchmarks/{scan}/{depth}/{kind}/{first}-{last}.tsv"
