"""Choose one bit depth's window with the library's choose_window, as the CLI does: once per scan
and depth (a global window reads the whole range here, and only here)."""

from tomotiff_job import open_source, run


def main(say) -> None:
    from tomotiff import __version__
    from tomotiff.extract import choose_window
    from tomotiff.manifest import write_json

    spec = snakemake.params.spec
    wanted = spec["window"]
    source = open_source(spec, spec["begin"], spec["stop"], window_images=True)
    try:
        window = choose_window(source, wanted["lo"], wanted["hi"], wanted["reference"], wanted["percent"],
                               wanted["method"], wanted["sample"])
        begin, stop = source.begin, source.stop
    finally:
        source.close()
    say(f"scan {spec['id']} {snakemake.wildcards.depth}: images {begin}..{stop - 1}; {window.describe()}")
    write_json(snakemake.output[0], {"scan": spec["id"], "depth": snakemake.wildcards.depth, "requested": wanted,
                                     "window": window.as_dict(), "range": {"begin": begin, "stop": stop},
                                     "tomotiff_version": __version__})


run(snakemake, main)  # noqa: F821
