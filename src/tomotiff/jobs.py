"""What each job of the workflow does, given its rule's parameters (a ``spec``: the scan's
resolved settings that the job depends on) and its files. The Snakemake scripts call these
and nothing else, so every job runs the library exactly as the commands do, and each can be
tested without Snakemake.
"""

import os
import re
from collections.abc import Callable

from tomotiff import __version__, clipping, pipeline, synthetic
from tomotiff.batch import shard_destination, source_request
from tomotiff.calibration import parse_pixel_size
from tomotiff.manifest import merge_shards, read_json, read_manifest, write_json, write_manifest
from tomotiff.mask import Mask
from tomotiff.pattern import DEFAULT_PATTERN
from tomotiff.plan import Destination, Layout, Product, Request, make_plan
from tomotiff.report import FIGURES, workflow_scan, write_scan_files
from tomotiff.sink import TiffFormat
from tomotiff.stats import scan_stats
from tomotiff.window import Window, WindowRequest, middle_image

Say = Callable[[str], object]
BITS = {"u8": 8, "u16": 16, "f32": 32}  # the workflow's depth names


# The commands' options that messages name, and the batch config's keys a workflow user sets instead
CONFIG_KEYS = {
    "-d": "dataset",
    "-i/--axis": "axis",
    "-b/--begin": "begin",
    "-s/--stop": "stop",
    "-r": "window: reference",
    "-p/--percent": "window: percent",
    "--image-key-path": "image_key_path",
    "--keys/--split-keys": "keys/split_keys",
    "--split-keys": "split_keys",
    "--keys": "keys",
    "--crop": "crop",
    "--lo/--hi": "window: lo/hi",
    "--pixel-size": "pixel_size",
}
_OPTION = re.compile(
    r"(?<![\w-])(" + "|".join(re.escape(o) for o in sorted(CONFIG_KEYS, key=len, reverse=True)) + r")(?![\w-])"
)


def in_config_terms(message: str) -> str:
    """A library message as a workflow user reads it: the options it names as the config keys."""
    return _OPTION.sub(lambda found: CONFIG_KEYS[found.group(1)], message)


def _request(spec: dict, products: tuple[Product, ...], destination: Destination, **choices) -> Request:
    """The scan's request over the source range given by ``choices`` (default: the scan's)."""
    begin, stop = choices.pop("begin", None), choices.pop("stop", None)
    return Request(
        source_request(spec, begin, stop),
        products,
        destination,
        spec.get("output_pattern", DEFAULT_PATTERN),
        image_key_path=spec["image_key_path"],
        **choices,
    )


def demo(kind: str, name: str, output: str, say: Say) -> None:
    """Write one of the workflow's demo scans (savu, gda or tiff), seeded by its name."""
    say(synthetic.write_demo(kind, name, output))


def window(spec: dict, output: str, say: Say) -> None:
    """Choose one bit depth's window as the commands do (a global window reads the whole range
    here, and only here), and record it for the depth's shards."""
    depth = spec["depth"]
    bits = BITS[depth]
    request = _request(spec, (Product(bits, WindowRequest(**spec["window"], mask=_mask(spec))),), Destination("."))
    with request.source.open() as source:
        plan = make_plan(request, source)
        conversion = pipeline.conversion_of(source, plan, request.products[0], False, say, say)
        begin, stop = source.begin, source.stop
    say(f"scan {spec['id']} {depth}: images {begin}..{stop - 1}; {conversion.window.describe()}")
    write_json(
        output,
        {
            "scan": spec["id"],
            "depth": depth,
            "requested": spec["window"],
            "window": conversion.window.as_dict(),
            "range": {"begin": begin, "stop": stop},
            "tomotiff_version": __version__,
        },
    )


def _mask(spec: dict) -> Mask | None:
    return Mask.of(spec["mask"]["shape"], spec["mask"]["values"])


def stats(spec: dict, window_files: list[str], manifest_files: list[str], output: str, say: Say) -> None:
    """The statistics of the scan's reference image (the middle projection by default), with the
    window each bit depth chose and the clipping summary of each quantised output's manifest
    (keyed by its directory under the scan's: u8, or u8/projections with split_keys)."""
    windows = {chosen["depth"]: Window(**chosen["window"]) for chosen in map(read_json, window_files)}
    request = _request(spec, (Product(),), Destination("."))
    with request.source.open() as source:
        plan = make_plan(request, source)
        reference = middle_image(plan.window_images) if spec["reference"] is None else spec["reference"]
        found = scan_stats(source, reference, windows, plan.describe(), mask=_mask(spec))
    clipped = {}
    for path in manifest_files:
        written = read_manifest(path)
        if written.get("clipping"):
            output_name = os.path.relpath(os.path.dirname(path), os.path.dirname(output) or ".")
            clipped[output_name] = written["clipping"]
            say(f"scan {spec['id']} {output_name}: {clipping.described(written['clipping'], written['bits'])}")
    found = {"scan": spec["id"], "kind": spec["kind"], **found, "clipping": clipped}
    say(
        f"scan {spec['id']}: images {found['range']['begin']}..{found['range']['stop'] - 1}, reference {reference}: "
        f"min {found['min']!r} max {found['max']!r} mean {found['mean']!r}"
    )
    write_json(output, found)


def shard(spec: dict, window_files: list[str], receipt: str, threads: int, say: Say) -> None:
    """Write the selected images among first..last (possibly none) at every bit depth of the scan
    from one read, each depth's partial manifest (its record), and the receipt listing them."""
    first, last = spec["first"], spec["last"]
    windows = {chosen["depth"]: Window(**chosen["window"]) for chosen in map(read_json, window_files)}
    products = tuple(Product(BITS[depth], windows.get(depth)) for depth in spec["depths"])
    layout = spec["layout"]
    request = _request(
        spec,
        products,
        shard_destination(spec["id"], first, last),
        begin=first,
        stop=last + 1,
        keys=spec["keys"],
        split_keys=spec["split"],
        layout=Layout(
            TiffFormat(layout["compression"], layout["imagej"], ome=layout["ome"]), layout["stack"], layout["bin"]
        ),
        scan_range=tuple(spec["scan_range"]),
        pixel_size=parse_pixel_size(layout["pixel_size"]) if layout.get("pixel_size") else None,
    )
    say(
        f"scan {spec['id']}: images {first}..{last} ({request.keys}) at {', '.join(spec['depths'])} from one read, "
        f"{threads} threads"
    )
    for depth, window in windows.items():
        say(f"{depth} {window.describe()}")
    pipeline.run(request, threads, say=say, warn=say)
    kind = spec["keys"] if spec["split"] else None
    records = {depth: request.destination.manifest(depth, kind) for depth in spec["depths"]}
    os.makedirs(os.path.dirname(receipt) or ".", exist_ok=True)  # Snakemake makes it; a direct call may not
    write_json(receipt, {"scan": spec["id"], "first": first, "last": last, "records": records})


def merge(spec: dict, receipts: list[str], output: str, say: Say) -> None:
    """Join the depth's records of the shards (``receipts`` name them) into the manifest.json one
    command over the range would write."""
    begin, stop = spec["range"]
    what = f"scan {spec['id']} {spec['depth']}"
    records = [read_json(read_json(receipt)["records"][spec["depth"]]) for receipt in receipts]
    merged = merge_shards(records, begin, stop, spec["keys"] == "all", what)
    images = merged.pop("images")
    written = write_manifest(output, merged, images)
    say(f"{what}: {len(images)} images ({spec['keys']}) of {begin}..{stop - 1} from {len(receipts)} shards")
    clipping.announce(written, what, say, say)


def report(spec: dict, stats_file: str, manifest_files: list[str], outputs: dict[str, str], say: Say) -> None:
    """The scan's report from what its jobs wrote: its report.html (as `tomotiff report results/SCAN`
    writes it) and each figure in its own directory (``outputs``: html and one per figure), for
    Snakemake's report. A problem verify finds is shown, not raised: the report is where to see it."""
    scan = workflow_scan(spec["id"], stats_file, manifest_files)
    for section in write_scan_files(scan, outputs["html"], {name: outputs[name] for name in FIGURES}):
        found = f"{len(section.problems)} problem(s)" if section.problems else "all images match manifest.json"
        say(f"scan {spec['id']} {section.output.label}: {section.count} images, verify: {found}")
