"""A batch of scans for the workflow: the config resolved into scans, and the planning queries
Snakemake asks while it builds the DAG (each scan's range, the kinds of image in it, the shards).

Everything here is plain data and metadata: the config (validated against config/schema.yaml
by Snakemake first), HDF5 metadata and image keys, directory listings; never pixels. The
workflow's rules/common.smk calls these functions and holds only paths and input functions.
"""

import functools
import json
import os
import re
import sys
from collections.abc import Iterator

from tomotiff.calibration import parse_pixel_size
from tomotiff.errors import TomotiffError
from tomotiff.keys import KEY_NAMES, RawScan
from tomotiff.mask import Mask
from tomotiff.pattern import DEFAULT_PATTERN, check_pattern
from tomotiff.plan import Destination, SourceRequest
from tomotiff.selection import Crop

SCAN_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
ID_RULE = (
    "a number, a range N-M of numbers, or a name of letters, digits, '_', '.' and '-' "
    "that starts with a letter or digit and holds no '..'"
)
DEPTHS = {8: "u8", 16: "u16", 32: "f32"}
QUANTISED = ("u8", "u16")
KINDS = tuple(KEY_NAMES)  # split_keys directories, as --split-keys writes them
HDF5_SUFFIXES = (".nxs", ".nx5", ".nx", ".h5", ".hdf5", ".hdf", ".he5")
MAX_RANGE = 100_000  # scans in one N-M range: a typo such as 23912-239200 should not make a huge DAG
RESULTS = "results"  # results/{scan}/{depth}[/{kind}]/ images and manifest.json; results/{scan}/.work/ records
DEMO = "resources/demo"  # where the workflow's own demo scans are made (rules/demo_data.smk)
DEMO_INPUT = re.compile(rf"{DEMO}/(savu|gda)/{SCAN_ID}\.nxs|{DEMO}/(tiff)/{SCAN_ID}")


class ConfigError(TomotiffError):
    """A batch config that cannot run; the message names the scan and the key."""


def load(config: dict, schema: str) -> dict[str, dict]:
    """The scans of ``config`` after validating it against the JSON schema at ``schema`` with
    Snakemake's validator (which fills in the defaults); see :func:`load_scans`. Any error is a
    :class:`ConfigError` of one line naming the scan and the key."""
    from snakemake.exceptions import WorkflowError
    from snakemake.utils import validate

    try:
        validate(config, schema)
    except WorkflowError as exc:
        error = exc.__cause__ or exc.__context__  # the jsonschema ValidationError
        if not hasattr(error, "absolute_path"):
            raise
        raise ConfigError(validation_message(config, error)) from None
    return load_scans(config)


def validation_message(config: dict, error) -> str:
    """The one line for a jsonschema ``error`` in ``config``: which key of which scan, and why."""
    path, message = list(error.absolute_path), error.message
    if len(path) >= 2 and path[0] == "scans" and isinstance(path[1], int):
        raw = config["scans"][path[1]]
        key = ".".join(str(p) for p in path[2:])
        if key == "id":
            message = f"{message}; an id is {ID_RULE}"
        return _scan_error(
            path[1], raw.get("id") if isinstance(raw, dict) else None, f"{key}: {message}" if key else message
        )
    where = ".".join(str(p) for p in path)
    return f"config: {where}: {message}" if where else f"config: {message}"


def _scan_error(index: int, raw_id, message: str) -> str:
    label = f"scan {raw_id}" if raw_id is not None else "a scan without id"
    return f"config: {label} (scans[{index}]): {message}"


def expand_ids(raw_id: int | str) -> list[str]:
    """An id, or the ids of a range ``N-M`` (inclusive; zero padding kept, e.g. 0098-0101)."""
    if isinstance(raw_id, int):
        return [str(raw_id)]
    match = re.fullmatch(r"(\d+)-(\d+)", raw_id)
    if match is None:
        return [raw_id]
    first, last = match.groups()
    if int(last) < int(first):
        raise TomotiffError(f"id range {raw_id} ends before it starts")
    if int(last) - int(first) >= MAX_RANGE:
        raise TomotiffError(f"id range {raw_id} holds more than {MAX_RANGE} scans")
    width = len(first) if first.startswith("0") else 0
    return [str(n).zfill(width) for n in range(int(first), int(last) + 1)]


def fill(template: str, scan: str, key: str) -> str:
    """Replace ``{scan}`` (the only placeholder) with the scan id; str.format is never used."""
    text = template.replace("{scan}", scan)
    if "{" in text or "}" in text:
        raise TomotiffError(f"{key} {template!r}: the only placeholder is {{scan}}")
    return text


def infer_kind(settings: dict) -> str:
    if settings["kind"] is not None:
        return settings["kind"]
    if settings["input"].lower().endswith(HDF5_SUFFIXES):
        return "hdf5"
    if settings["input_pattern"] is not None:
        return "tiff"
    return "hdf5" if settings["dataset"] is not None else "tiff"


def resolve_scan(scan_id: str, settings: dict) -> dict:
    """One scan's settings (defaults applied), resolved: kind, paths, depths, the window of each
    depth and the output choices, in the terms the commands take them."""
    kind = infer_kind(settings)
    begin, stop = settings["begin"], settings["stop"]
    if stop is not None and stop <= begin:
        raise TomotiffError(f"stop ({stop}) must be greater than begin ({begin}); stop is exclusive")
    if kind == "tiff":  # tiff2tiffux has no --keys, --split-keys or --image-key-path: TIFFs carry no image_key
        for key, default in (("keys", "all"), ("split_keys", False), ("image_key_path", None)):
            if settings[key] != default:
                raise TomotiffError(
                    f"{key}: {settings[key]!r} applies to HDF5 raw scans only (image_key); "
                    f"this scan is a directory of TIFFs"
                )
    if settings["ome"] and settings["imagej"]:
        raise TomotiffError("ome and imagej are two ways of describing a file: choose one")
    if settings["split_keys"] and settings["keys"] != "all":
        raise TomotiffError(
            f"split_keys writes every kind of image, each into its own directory; leave out "
            f"keys: {settings['keys']} (or drop split_keys)"
        )
    depths = [DEPTHS[bits] for bits in sorted(settings["bits"])]
    windows = {
        depth: _window(settings["windows"].get(depth) or settings["window"], depth)
        for depth in depths
        if depth in QUANTISED
    }
    crop = settings["crop"]
    return {
        "id": scan_id,
        "kind": kind,
        "input": fill(settings["input"], scan_id, "input"),
        "dataset": settings["dataset"] if kind == "hdf5" else None,
        "axis": settings["axis"] if kind == "hdf5" else 0,
        "input_pattern": fill(settings["input_pattern"] or DEFAULT_PATTERN, scan_id, "input_pattern")
        if kind == "tiff"
        else None,
        "begin": begin,
        "stop": stop,
        "crop": [int(margin) for margin in crop] if crop is not None else [0, 0, 0, 0],
        "image_key_path": settings["image_key_path"],
        "keys": settings["keys"],
        "split_keys": settings["split_keys"],
        "depths": depths,
        "reference": settings["window"].get("reference"),
        "windows": windows,
        "mask": _mask(settings["mask"], settings["mask_values"]),
        "output_pattern": check_pattern(fill(settings["output_pattern"], scan_id, "output_pattern"), "output_pattern"),
        "layout": {
            "compression": settings["compression"],
            "imagej": settings["imagej"],
            "stack": settings["stack"],
            "bin": int(settings["bin"]),
            "pixel_size": _pixel_size(settings["pixel_size"]),
            "ome": settings["ome"],
        },
        "shard_size": settings["shard_size"],
    }


def _mask(shape: str | None, values: list) -> dict:
    """The mask keys as the window and stats jobs take them (checked now, so a typo fails before any job)."""
    Mask.of(shape, values)
    return {"shape": shape, "values": [str(v) if isinstance(v, str) or v != v else v for v in values]}


def _pixel_size(value: float | str | None) -> str | None:
    """The pixel_size key as --pixel-size takes it (checked now, so a typo fails before any job)."""
    if value is None:
        return None
    text = str(value)
    try:
        parse_pixel_size(text)
    except TomotiffError as exc:
        raise TomotiffError(f"pixel_size: {str(exc).replace('--pixel-size ', '', 1)}") from None
    return text


def _window(window: dict, depth: str) -> dict:
    lo, hi = window.get("lo"), window.get("hi")
    if lo is not None and hi is not None and not hi > lo:
        raise TomotiffError(f"window of {depth}: hi ({hi}) must be greater than lo ({lo})")
    return {
        "lo": lo,
        "hi": hi,
        "reference": window.get("reference"),
        "percent": float(window.get("percent", 0)),
        "method": window.get("method", "reference"),
        "sample": int(window.get("sample", 1)),
    }


def load_scans(config: dict) -> dict[str, dict]:
    """The scans of a validated batch config by id, in config order, ranges expanded and defaults
    applied; a :class:`ConfigError` names the scan and the key."""
    scans, origin = {}, {}
    for index, raw in enumerate(config["scans"]):
        settings = {**config["defaults"], **raw}  # a scan's key replaces the default's as a whole
        try:
            for scan_id in expand_ids(raw["id"]):
                if scan_id in scans:
                    raise TomotiffError(f"scan {scan_id} is also listed in scans[{origin[scan_id]}]")
                scans[scan_id] = resolve_scan(scan_id, settings)
                origin[scan_id] = index
        except TomotiffError as exc:
            raise ConfigError(_scan_error(index, raw["id"], str(exc))) from None
    return scans


def destination(scan_id: str) -> Destination:
    """Where a scan's outputs go: results/{scan}/{depth}[/{kind}]/, with their manifest.json."""
    return Destination(os.path.join(RESULTS, scan_id), by_product=True)


def shard_destination(scan_id: str, first: int, last: int) -> Destination:
    """The scan's outputs, with shard first..last's record under results/{scan}/.work/{depth}[/{kind}]/."""
    return Destination(
        os.path.join(RESULTS, scan_id),
        by_product=True,
        records=os.path.join(RESULTS, scan_id, ".work"),
        manifest_name=f"{first:05d}-{last:05d}.json",
    )


def receipt_path(scan_id: str, first: int, last: int, kind: str | None = None) -> str:
    """Where shard first..last of a scan (of one kind, with split_keys) lists the records it wrote."""
    return os.path.join(RESULTS, scan_id, ".work", "shards", *([kind] if kind else []), f"{first:05d}-{last:05d}.json")


def source_request(scan: dict, begin: int | None = None, stop: int | None = None) -> SourceRequest:
    """The scan's source (images begin..stop-1 of it; by default the scan's own range)."""
    return SourceRequest(
        scan["input"],
        scan["kind"],
        scan["dataset"],
        scan["axis"],
        scan["input_pattern"] or DEFAULT_PATTERN,
        scan["begin"] if begin is None else begin,
        scan["stop"] if stop is None else stop,
        Crop(*scan["crop"]),
    )


class Planner:
    """The planning queries of a batch, each answered once per scan (Snakemake asks them for
    every job while it builds the DAG). Scans made by the workflow itself (the demo batch) are
    answered from what the workflow will write, before they exist."""

    def __init__(self, scans: dict[str, dict]):
        self.scans = scans

    @functools.cache
    def scan_range(self, scan_id: str) -> tuple[int, int] | None:
        """begin, stop of a scan: the config's, else its source's length (metadata only). None when
        the source cannot be read: the scan's own jobs then fail saying why, naming the scan."""
        scan = self.scans[scan_id]
        if scan["stop"] is not None:
            return scan["begin"], scan["stop"]
        demo = self._demo_kind(scan)
        if demo:
            from tomotiff.synthetic import demo_length

            return scan["begin"], demo_length(demo)
        try:
            with source_request(scan).open() as source:
                return source.begin, source.stop
        except TomotiffError:
            return None

    @functools.cache
    def kinds_in_range(self, scan_id: str) -> dict[str, list[int]] | None:
        """For a split_keys scan: the indices of each kind of image in the scan's range, from its
        image_key. None when they cannot be read (the scan's jobs then fail saying why)."""
        scan, span = self.scans[scan_id], self.scan_range(scan_id)
        if span is None:
            return None
        keys = self._keys(scan)
        return None if keys is None else {kind: keys.indices(kind, *span).tolist() for kind in KINDS}

    def _keys(self, scan: dict) -> RawScan | None:
        demo = self._demo_kind(scan)
        if demo:
            from tomotiff.synthetic import demo_image_keys

            found = demo_image_keys(demo)
            return None if found is None else RawScan("demo", found, True)
        try:
            with source_request(scan, stop=None).open() as source:
                return source.image_keys(scan["image_key_path"], True)
        except TomotiffError:
            return None

    @staticmethod
    def _demo_kind(scan: dict) -> str | None:
        """The demo kind (savu, gda, tiff) of a scan the workflow makes and has not made yet."""
        match = DEMO_INPUT.fullmatch(scan["input"])
        return (match.group(1) or match.group(2)) if match and not os.path.exists(scan["input"]) else None

    @functools.cache
    def parts(self, scan_id: str) -> list[str | None]:
        """The kinds of image a scan's bit depth is split into, as --split-keys splits it (those
        present in its range), or [None] for one directory. When the keys cannot be read, the
        projections stand for them all: their jobs fail with the reason."""
        if not self.scans[scan_id]["split_keys"]:
            return [None]
        found = self.kinds_in_range(scan_id)
        return ["projections"] if found is None else [kind for kind, indices in found.items() if indices]

    @functools.cache
    def shard_ranges(self, scan_id: str, kind: str | None = None) -> list[tuple[int, int]]:
        """(first, last) of each shard, inclusive. Boundaries fall on multiples of shard_size, so
        only the first shard may be short and a shard keeps its name when begin moves. A stack
        (one file per scan and depth) is one shard: the whole range. With split_keys, a kind's
        shards are those holding at least one image of that kind."""
        scan = self.scans[scan_id]
        begin, stop = self.scan_range(scan_id)
        if scan["layout"]["stack"]:
            ranges = [(begin, stop - 1)]
        else:
            size = scan["shard_size"]
            bounds = [begin, *range((begin // size + 1) * size, stop, size), stop]
            ranges = [(a, b - 1) for a, b in zip(bounds, bounds[1:])]
        found = self.kinds_in_range(scan_id) if kind else None
        if found is None:
            return ranges
        return [(first, last) for first, last in ranges if any(first <= i <= last for i in found[kind])]


def shard_files(scan: dict, record: str, first: int, last: int) -> list[str] | None:
    """The files shard first..last wrote: one per image of its range, named by the output
    pattern; or, when only some images are selected (keys, split_keys) or they go into one
    stack file, the files its record lists (a raw scan's keys are data, not config). None when
    the record cannot be read (it is then rewritten)."""
    if _named_by_pattern(scan):
        return [scan["output_pattern"] % i for i in range(first, last + 1)]
    try:
        with open(record) as handle:
            images = json.load(handle)["images"]
        return list(dict.fromkeys(str(entry["file"]) for entry in images))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _named_by_pattern(scan: dict) -> bool:
    """Whether a shard's files are one per image of its range, named by the output pattern."""
    return scan["keys"] == "all" and not scan["split_keys"] and not scan["layout"]["stack"]


def forget_incomplete_shards(scans: dict[str, dict], report=lambda line: print(line, file=sys.stderr)) -> None:
    """Remove the record of every shard whose images are not all there, and the manifest.json of
    its scan and depth, so that the next run rewrites just that shard and the manifest.

    The shard's receipt goes too (it stands for all its bit depths: the shard then writes them
    all again, the intact ones byte for byte as they were).

    Why: the TIFFs cannot be declared outputs (their number is known only from the data, and a
    directory() output would clash with the shards writing into it), so Snakemake cannot see a
    deleted image; a shard's record says its images exist, and when that is no longer true the
    record goes, before the DAG is built (an input function is too late: Snakemake never reruns
    a job whose outputs are up to date because an input is missing). Only names are checked: one
    directory listing per scan and depth, and the records of shards that select images.

    Safe while another run is alive: tomotiff never deletes an image (a rewrite replaces each
    atomically) and writes a record only once all its images exist, so a missing image is always
    one someone deleted; Snakemake's own lock then refuses the second run.
    `tomotiff verify results/SCAN/DEPTH` checks the checksums.
    """
    for scan_id, scan in scans.items():
        named: dict[tuple[int, int], list[str]] = {}  # a shard's names by the pattern, the same at every depth
        for depth in scan["depths"]:
            for kind in KINDS if scan["split_keys"] else [None]:
                for record, why in _incomplete_shards(scan, depth, kind, named):
                    where = f"{depth}/{kind}" if kind else depth
                    report(
                        f"scan {scan_id} {where}: {why}; removed its record and manifest.json so that they are "
                        "rewritten"
                    )
                    first, last = (int(n) for n in os.path.basename(record)[: -len(".json")].split("-"))
                    for path in (
                        record,
                        receipt_path(scan_id, first, last, kind),
                        destination(scan_id).manifest(depth, kind),
                    ):
                        if os.path.exists(path):
                            os.remove(path)


def _incomplete_shards(
    scan: dict, depth: str, kind: str | None, named: dict[tuple[int, int], list[str]]
) -> Iterator[tuple[str, str]]:
    """(record, why) of each shard record of the scan's depth (and kind) whose images are missing;
    ``named`` keeps the names of the scan's pattern-named shards for its other depths."""
    records_dir = os.path.dirname(shard_destination(scan["id"], 0, 0).manifest(depth, kind))
    try:
        records = sorted(name for name in os.listdir(records_dir) if re.fullmatch(r"\d+-\d+\.json", name))
    except OSError:
        return
    try:
        present = set(os.listdir(destination(scan["id"]).directory(depth, kind)))
    except OSError:
        present = set()
    for record in records:
        first, last = (int(n) for n in record[: -len(".json")].split("-"))
        files = named.get((first, last))
        if files is None:
            files = shard_files(scan, os.path.join(records_dir, record), first, last)
            if files is not None and _named_by_pattern(scan):
                named[first, last] = files
        if files is None:
            yield os.path.join(records_dir, record), f"the record of shard {first}-{last} is unreadable"
            continue
        if present.issuperset(files):
            continue
        missing = [name for name in files if name not in present]
        if missing:
            more = f" and {len(missing) - 1} more images" if len(missing) > 1 else ""
            yield os.path.join(records_dir, record), f"{missing[0]}{more} of shard {first}-{last} missing"
