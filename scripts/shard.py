"""Write one shard (the selected images among first..last) with the library's extract(), as the CLI would."""

from tomotiff_job import open_source, read_json, run


def main(say) -> None:
    from tomotiff.extract import Conversion, Layout, extract
    from tomotiff.sink import TiffFormat
    from tomotiff.window import Window

    spec = snakemake.params.spec
    depth, layout = spec["depth"], spec["layout"]
    if depth == "f32":
        conversion = Conversion("float32")
    else:
        conversion = Conversion("quantise", int(depth[1:]), Window(**read_json(snakemake.input.window[0])["window"]))
    source = open_source(spec, spec["first"], spec["last"] + 1, keys=spec["keys"])
    try:
        count = len(source.indices)
        say(f"scan {spec['id']} {depth}: images {spec['first']}..{spec['last']}, {count} of them {spec['keys']} -> "
            f"{spec['output_dir']}/{spec['output_pattern']}, {snakemake.threads} workers")
        if conversion.window is not None:
            say(conversion.window.describe())
        # A shard without a selected image (keys) writes no image, only its record (an empty list).
        extract(source, spec["output_dir"], spec["output_pattern"], conversion, workers=snakemake.threads,
                progress=False, manifest_path=snakemake.output[0], warn=say,
                layout=Layout(TiffFormat(layout["compression"], layout["imagej"]), layout["stack"], layout["bin"]))
    finally:
        source.close()
    say(f"wrote {count} images" + (" (one stack file)" if layout["stack"] else ""))


run(snakemake, main)  # noqa: F821
