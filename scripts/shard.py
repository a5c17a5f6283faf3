"""Write one shard (images first..last) with the library's extract(), as the CLI would."""

from tomotiff_job import open_source, read_json, run


def main(say) -> None:
    from tomotiff.extract import Conversion, extract
    from tomotiff.window import Window

    spec = snakemake.params.spec
    depth = spec["depth"]
    if depth == "f32":
        conversion = Conversion("float32")
    else:
        conversion = Conversion("quantise", int(depth[1:]), Window(**read_json(snakemake.input.window[0])["window"]))
    source = open_source(spec, spec["first"], spec["last"] + 1)
    try:
        say(f"scan {spec['id']} {depth}: images {spec['first']}..{spec['last']} -> "
            f"{spec['output_dir']}/{spec['output_pattern']}, {snakemake.threads} workers")
        if conversion.window is not None:
            say(conversion.window.describe())
        extract(source, spec["output_dir"], spec["output_pattern"], conversion, workers=snakemake.threads,
                progress=False, manifest_path=snakemake.output[0], warn=say)
    finally:
        source.close()
    say(f"wrote {spec['last'] - spec['first'] + 1} images")


run(snakemake, main)  # noqa: F821
