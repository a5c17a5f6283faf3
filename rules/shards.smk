# One job per shard: images first..last of one scan, read once and written at every bit depth
# into results/{scan}/{depth}/. The TIFFs are not declared outputs (a directory() output would
# clash with the other shards writing there); the shard's receipt is.


rule shard:
    """Write images first..last at every bit depth from one read, as the commands would."""
    input:
        source=source_input,
        windows=shard_windows,
    output:
        SHARD,
    params:
        spec=shard_params,
    log:
        "logs/{scan}/shards/{first}-{last}.log",
    benchmark:
        "logs/benchmarks/{scan}/shards/{first}-{last}.tsv"
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
        "logs/{scan}/shards/{kind}/{first}-{last}.log",
    benchmark:
        "logs/benchmarks/{scan}/shards/{kind}/{first}-{last}.tsv"
