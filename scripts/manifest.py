"""Merge a scan's shard manifests into results/{scan}/{depth}/manifest.json (JSON only)."""

import os

from tomotiff_job import read_json, run

PER_SHARD = ("begin", "stop", "count", "images")


def main(say) -> None:
    from tomotiff.errors import TomotiffError
    from tomotiff.manifest import write_manifest

    spec = snakemake.params.spec
    paths = sorted(snakemake.input, key=lambda path: read_json(path)["begin"])
    shards = [read_json(path) for path in paths]
    header = {key: value for key, value in shards[0].items() if key not in PER_SHARD}
    for path, shard in zip(paths, shards):
        differs = sorted(key for key in set(header) | set(shard)
                         if key not in PER_SHARD and shard.get(key) != header.get(key))
        if differs:
            raise TomotiffError(f"{spec['depth']} shard {path} differs from the others in {', '.join(differs)}; "
                                f"delete {os.path.dirname(path)} and run again to rewrite them all")
    images = [entry for shard in shards for entry in shard["images"]]
    indices = [entry["index"] for entry in images]
    begin, stop = spec["range"]
    # The shards lie in the scan's range in order, without overlap (with split_keys, only those
    # holding the kind); each lists the selected images of its own part (with keys, possibly
    # none; without, every image: the shards then tile the range), in index order.
    disjoint = all(a["stop"] <= b["begin"] for a, b in zip(shards, shards[1:]))
    within = begin <= shards[0]["begin"] and shards[-1]["stop"] <= stop
    inside = all(shard["begin"] <= entry["index"] < shard["stop"] for shard in shards for entry in shard["images"])
    ordered = all(a < b for a, b in zip(indices, indices[1:]))
    if not (disjoint and within and inside and ordered) or spec["keys"] == "all" and indices != list(range(begin, stop)):
        raise TomotiffError(f"the {spec['depth']} shards do not cover images {begin}..{stop - 1} exactly once")
    if not images:  # the shard jobs refuse this first, with the CLI's message
        raise TomotiffError(f"no {spec['keys']} among images {begin}..{stop - 1}")
    # The header the CLI writes for the whole range: shard-specific keys recomputed, order kept.
    whole = {"begin": begin, "stop": stop, "count": len(images)}
    merged = {key: whole.get(key, value) for key, value in shards[0].items() if key != "images"}
    write_manifest(snakemake.output[0], merged, images)
    say(f"scan {spec['id']} {spec['depth']}: {len(images)} images ({spec['keys']}) of {begin}..{stop - 1} "
        f"from {len(shards)} shards")


run(snakemake, main)  # noqa: F821
