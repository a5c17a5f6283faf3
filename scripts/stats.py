"""Statistics of the scan's reference image (tomotiff.stats) with each bit depth's window."""

from tomotiff_job import open_source, read_json, run


def main(say) -> None:
    from tomotiff.extract import middle_image
    from tomotiff.manifest import write_json
    from tomotiff.stats import scan_stats
    from tomotiff.window import Window

    spec = snakemake.params.spec
    windows = {}
    for path in snakemake.input.windows:
        chosen = read_json(path)
        windows[chosen["depth"]] = Window(**chosen["window"])
    source = open_source(spec, spec["begin"], spec["stop"], window_images=True)
    try:
        reference = middle_image(source) if spec["reference"] is None else spec["reference"]
        stats = scan_stats(source, reference, windows)
    finally:
        source.close()
    stats = {"scan": spec["id"], "kind": spec["kind"], **stats}
    say(f"scan {spec['id']}: images {stats['range']['begin']}..{stats['range']['stop'] - 1}, reference {reference}: "
        f"min {stats['min']!r} max {stats['max']!r} mean {stats['mean']!r}")
    write_json(snakemake.output[0], stats)


run(snakemake, main)  # noqa: F821
