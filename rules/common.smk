"""Configuration, scan expansion, output paths and input functions shared by the rule files.

Everything here runs at the top level of the Snakefile, so it runs again inside every
cluster job: it reads the config, never image data, and never opens an HDF5 file. The
number of shards of a scan comes from the config's begin/stop or, when stop is not given,
from the source's metadata, read in an input function (see source_stop); with split_keys,
the kinds of image in the range come from its image_key, also read in input functions
(kinds_in_range). Only the main
process does two more cheap things before the DAG is built (at the end of this file): it
releases Snakemake's locks when the run that left them was killed, and it notices deleted
TIFFs (one directory listing per scan and bit depth).
"""

import functools
import itertools
import json
import os
import re
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

DEMO = "resources/demo"
SCAN_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]*"
DEPTHS = {8: "u8", 16: "u16", 32: "f32"}
QUANTISED = ("u8", "u16")
KINDS = ("projections", "flats", "darks")  # split_keys directories, as --split-keys writes them
HDF5_SUFFIXES = (".nxs", ".nx5", ".nx", ".h5", ".hdf5", ".hdf", ".he5")
MAX_RANGE = 100_000  # scans in one N-M range: a typo such as 23912-239200 should not make a huge DAG
ENV = "../envs/tomotiff.yaml"
DEMO_INPUT = re.compile(rf"{DEMO}/(?:savu|gda)/{SCAN_ID}\.nxs|{DEMO}/tiff/{SCAN_ID}")  # what rules/demo_data.smk makes


wildcard_constraints:
    scan=SCAN_ID,
    depth="u8|u16|f32",
    first=r"\d+",
    last=r"\d+",
    name=SCAN_ID,
    kind="|".join(KINDS),


# --- tomotiff itself --------------------------------------------------------------------
# The version is a parameter of every rule that writes images, so upgrading tomotiff
# reruns them (Snakemake's params trigger). Read from the installed metadata (cheap: numpy
# is not imported); with only Snakemake installed (`--sdm conda`), from pyproject.toml.


def tomotiff_version() -> str:
    try:
        return version("tomotiff")
    except PackageNotFoundError:
        try:
            text = (Path(workflow.basedir) / "src" / "tomotiff" / "__init__.py").read_text()
        except OSError:
            return "unknown"
        found = re.search(r'^__version__ = "([^"]+)"', text, re.MULTILINE)
        return found.group(1) if found else "unknown"


TOMOTIFF_VERSION = tomotiff_version()

try:  # the library's own pattern check, when tomotiff is importable here
    from tomotiff.errors import TomotiffError
    from tomotiff.pattern import check_pattern
except ImportError:  # only Snakemake here (`--sdm conda`): the jobs run the full check
    TomotiffError = ValueError
    check_pattern = None


# --- configuration -------------------------------------------------------------------------


def config_error(index: int, raw_id, message: str) -> WorkflowError:
    label = f"scan {raw_id}" if raw_id is not None else "a scan without id"
    return WorkflowError(f"config: {label} (scans[{index}]): {message}")


ID_RULE = ("a number, a range N-M of numbers, or a name of letters, digits, '_', '.' and '-' "
           "that starts with a letter or digit and holds no '..'")


def validate_config(config: dict) -> None:
    """Validate against config/schema.yaml (filling defaults); on error, name the key and scan."""
    try:
        validate(config, "../config/schema.yaml")
    except WorkflowError as exc:
        error = exc.__cause__ or exc.__context__  # the jsonschema ValidationError
        if not hasattr(error, "absolute_path"):
            raise
        path = list(error.absolute_path)
        message = error.message
        if len(path) >= 2 and path[0] == "scans" and isinstance(path[1], int):
            raw = config["scans"][path[1]]
            raw_id = raw.get("id") if isinstance(raw, dict) else None
            key = ".".join(str(p) for p in path[2:])
            if key == "id":
                message = f"{message}; an id is {ID_RULE}"
            raise config_error(path[1], raw_id, f"{key}: {message}" if key else message) from None
        where = ".".join(str(p) for p in path)
        raise WorkflowError(f"config: {where}: {message}" if where else f"config: {message}") from None


def expand_ids(raw_id) -> list[str]:
    """An id, or the ids of a range ``N-M`` (inclusive; zero padding kept, e.g. 0098-0101)."""
    if isinstance(raw_id, int):
        return [str(raw_id)]
    match = re.fullmatch(r"(\d+)-(\d+)", raw_id)
    if match is None:
        return [raw_id]
    first, last = match.groups()
    if int(last) < int(first):
        raise ValueError(f"id range {raw_id} ends before it starts")
    if int(last) - int(first) >= MAX_RANGE:
        raise ValueError(f"id range {raw_id} holds more than {MAX_RANGE} scans")
    width = len(first) if first.startswith("0") else 0
    return [str(n).zfill(width) for n in range(int(first), int(last) + 1)]


def fill(template: str, scan: str, key: str) -> str:
    """Replace ``{scan}`` (the only placeholder) with the scan id; str.format is never used."""
    text = template.replace("{scan}", scan)
    if "{" in text or "}" in text:
        raise ValueError(f"{key} {template!r}: the only placeholder is {{scan}}")
    return text


def infer_kind(settings: dict) -> str:
    if settings["kind"] is not None:
        return settings["kind"]
    if settings["input"].lower().endswith(HDF5_SUFFIXES):
        return "hdf5"
    if settings["input_pattern"] is not None:
        return "tiff"
    return "hdf5" if settings["dataset"] is not None else "tiff"


def check_output_pattern(pattern: str) -> str:
    """A plain file name (nothing can leave the output directory) with one integer field."""
    if os.path.basename(pattern) != pattern or "\\" in pattern or pattern.startswith("..") or pattern in (".", ""):
        raise ValueError(f"output_pattern {pattern!r} must be a plain file name, without a directory part or '..'")
    if pattern.startswith("."):
        raise ValueError(f"output_pattern {pattern!r} must not start with '.' (hidden names are temporary files)")
    if check_pattern is not None:
        try:
            check_pattern(pattern, "output_pattern")
        except TomotiffError as exc:
            raise ValueError(str(exc)) from None
    return pattern


def resolve_scan(scan_id: str, settings: dict) -> dict:
    """One scan's settings, resolved: kind, paths, depths, the window of each depth and the
    output choices, in the terms the library takes them (as the CLI passes them)."""
    kind = infer_kind(settings)
    begin, stop = settings["begin"], settings["stop"]
    if stop is not None and stop <= begin:
        raise ValueError(f"stop ({stop}) must be greater than begin ({begin}); stop is exclusive")
    if kind == "tiff":  # tiff2tiffux has no --keys, --split-keys or --image-key-path: TIFFs carry no image_key
        for key, default in (("keys", "all"), ("split_keys", False), ("image_key_path", None)):
            if settings[key] != default:
                raise ValueError(f"{key}: {settings[key]!r} applies to HDF5 raw scans only (image_key); "
                                 f"this scan is a directory of TIFFs")
    if settings["split_keys"] and settings["keys"] != "all":
        raise ValueError(f"split_keys writes every kind of image, each into its own directory; leave out "
                         f"keys: {settings['keys']} (or drop split_keys)")
    read_when_planning = [key for key, reads in (("split_keys", settings["split_keys"]), ("stop", stop is None)) if reads]
    if read_when_planning and check_pattern is None:  # tomotiff is not importable here (--sdm conda)
        raise ValueError(f"{' and '.join(read_when_planning)}: the scan's image keys or length are read when the run "
                         f"is planned, so tomotiff must be installed where snakemake runs (pip install -e .); "
                         f"or give stop (and no split_keys)")
    windows = {}
    for depth in QUANTISED:
        window = settings["windows"].get(depth) or settings["window"]
        lo, hi = window.get("lo"), window.get("hi")
        if lo is not None and hi is not None and not hi > lo:
            raise ValueError(f"window of {depth}: hi ({hi}) must be greater than lo ({lo})")
        windows[depth] = {"lo": lo, "hi": hi, "reference": window.get("reference"),
                          "percent": float(window.get("percent", 0)), "method": window.get("method", "reference"),
                          "sample": int(window.get("sample", 1))}
    depths = [DEPTHS[bits] for bits in sorted(settings["bits"])]
    input_pattern = settings["input_pattern"] or "image_%05d.tif"
    crop = settings["crop"]
    return {
        "id": scan_id,
        "kind": kind,
        "input": fill(settings["input"], scan_id, "input"),
        "dataset": settings["dataset"] if kind == "hdf5" else None,
        "axis": settings["axis"] if kind == "hdf5" else 0,
        "input_pattern": fill(input_pattern, scan_id, "input_pattern") if kind == "tiff" else None,
        "begin": begin,
        "stop": stop,
        "crop": [int(margin) for margin in crop] if crop is not None else [0, 0, 0, 0],
        "image_key_path": settings["image_key_path"],
        "keys": settings["keys"],
        "split_keys": settings["split_keys"],
        "depths": depths,
        "reference": settings["window"].get("reference"),
        "windows": {depth: windows[depth] for depth in depths if depth in QUANTISED},
        "output_pattern": check_output_pattern(fill(settings["output_pattern"], scan_id, "output_pattern")),
        "layout": {"compression": settings["compression"], "imagej": settings["imagej"], "stack": settings["stack"],
                   "bin": int(settings["bin"])},
        "shard_size": settings["shard_size"],
    }


def load_scans(config: dict) -> dict[str, dict]:
    """The scans of the batch by id, in config order, ranges expanded and defaults applied."""
    validate_config(config)
    scans, origin = {}, {}
    for index, raw in enumerate(config["scans"]):
        settings = {**config["defaults"], **raw}  # a scan's key replaces the default's as a whole
        try:
            ids = expand_ids(raw["id"])
            for scan_id in ids:
                if scan_id in scans:
                    raise ValueError(f"scan {scan_id} is also listed in scans[{origin[scan_id]}]")
                scans[scan_id] = resolve_scan(scan_id, settings)
                origin[scan_id] = index
        except ValueError as exc:
            raise config_error(index, raw["id"], str(exc)) from None
    return scans


SCANS = load_scans(config)


# --- paths (everything under results/{scan}; logs under logs/{scan}) ------------------------


# With split_keys, each kind of image (wildcard kind) has its own directory below the bit
# depth's, with its own shards and manifest.json, as `--split-keys` writes them.
STATS = "results/{scan}/stats.json"
WINDOW = "results/{scan}/.work/window-{depth}.json"
SHARD = "results/{scan}/.work/{depth}/{first}-{last}.json"
KIND_SHARD = "results/{scan}/.work/{depth}/{kind}/{first}-{last}.json"
MANIFEST = "results/{scan}/{depth}/manifest.json"
KIND_MANIFEST = "results/{scan}/{depth}/{kind}/manifest.json"


def stats_path(scan: str) -> str:
    return STATS.replace("{scan}", scan)


def window_path(scan: str, depth: str) -> str:
    return WINDOW.replace("{scan}", scan).replace("{depth}", depth)


def output_dir(scan: str, depth: str, kind: str | None = None) -> str:
    """Where the images of a scan's bit depth go: results/{scan}/{depth}[/{kind}]."""
    return os.path.join("results", scan, depth, *([kind] if kind else []))


def work_dir(scan: str, depth: str, kind: str | None = None) -> str:
    """Where the shard records of a scan's bit depth go: results/{scan}/.work/{depth}[/{kind}]."""
    return os.path.join("results", scan, ".work", depth, *([kind] if kind else []))


def shard_path(scan: str, depth: str, first: int, last: int, kind: str | None = None) -> str:
    return f"{work_dir(scan, depth, kind)}/{first:05d}-{last:05d}.json"


def manifest_path(scan: str, depth: str, kind: str | None = None) -> str:
    return f"{output_dir(scan, depth, kind)}/manifest.json"


def final_outputs(wildcards) -> list[str]:
    """What `snakemake` makes by default: every scan's stats and its manifest per bit depth
    (with split_keys, per bit depth and kind of image in the scan). An input function, so
    that the image keys are read only when the DAG is built, never again in a cluster job."""
    outputs = []
    for scan_id, scan in SCANS.items():
        outputs.append(stats_path(scan_id))
        outputs.extend(manifest_path(scan_id, depth, kind) for depth in scan["depths"] for kind in parts(scan))
    return outputs


# --- input functions and parameters --------------------------------------------------------


def scan_of(wildcards) -> dict:
    try:
        return SCANS[wildcards.scan]
    except KeyError:
        raise WorkflowError(f"scan {wildcards.scan} is not in the config") from None


def source_input(wildcards) -> list[str]:
    """The scan's input as a Snakemake input (so a newer input reruns the scan), when it exists
    or the workflow makes it. A missing input is left out of the DAG on purpose: the job then
    fails with a message naming the scan, and `--keep-going` finishes every other scan."""
    path = scan_of(wildcards)["input"]
    return [path] if DEMO_INPUT.fullmatch(path) or os.path.exists(path) else []


def source_spec(scan: dict) -> dict:
    """Where the images come from: the parameters a script needs to open the source (the crop
    and the image_key dataset too: they change the window, the statistics and every image).
    The absolute path is one as well: every TIFF records it, so a relative input seen from a
    moved working directory reruns the scan rather than mixing two paths in one scan's files."""
    keys = ("id", "kind", "input", "dataset", "axis", "input_pattern", "begin", "stop", "crop", "image_key_path")
    return {**{key: scan[key] for key in keys}, "source": os.path.abspath(scan["input"])}


def window_params(wildcards) -> dict:
    scan = scan_of(wildcards)
    return {**source_spec(scan), "window": scan["windows"][wildcards.depth], "tomotiff": TOMOTIFF_VERSION}


def stats_windows(wildcards) -> list[str]:
    scan = scan_of(wildcards)
    return [window_path(scan["id"], depth) for depth in scan["windows"]]


def stats_params(wildcards) -> dict:
    scan = scan_of(wildcards)
    return {**source_spec(scan), "reference": scan["reference"], "tomotiff": TOMOTIFF_VERSION}


def shard_window(wildcards) -> list[str]:
    return [window_path(wildcards.scan, wildcards.depth)] if wildcards.depth in QUANTISED else []


def selected_keys(scan: dict, wildcards) -> str:
    """Which images a shard or manifest job handles: the kind of its directory (split_keys), else keys."""
    return wildcards.get("kind") or scan["keys"]


def shard_params(wildcards) -> dict:
    """Everything that determines a shard's images (the window comes in its input file): which
    images (keys), and how they are laid out (compression, imagej, stack, bin), besides the
    source. Only these jobs see keys and the layout, so changing them rewrites the images and
    the manifests, never the windows or the statistics."""
    scan = scan_of(wildcards)
    return {
        **source_spec(scan),
        "first": int(wildcards.first),
        "last": int(wildcards.last),
        "depth": wildcards.depth,
        "keys": selected_keys(scan, wildcards),
        "layout": scan["layout"],
        "output_dir": output_dir(scan["id"], wildcards.depth, wildcards.get("kind")),
        "output_pattern": scan["output_pattern"],
        "tomotiff": TOMOTIFF_VERSION,
    }


@functools.cache
def source_stop(scan_id: str) -> int | None:
    """Where a scan without a configured stop ends: the image axis's length (HDF5 metadata
    only, no pixels) or the last consecutive TIFF. Read in input functions, never at the top
    level, and once per scan. None when the input cannot be read: the scan's stats job then
    fails with the reason, naming the scan, and --keep-going finishes the other scans.

    (A checkpoint recording the range would also work, but Snakemake loses the groups of
    shard jobs created after a checkpoint, snakemake/snakemake#4202, and the slurm profile
    groups shards.)"""
    scan = SCANS[scan_id]
    if TomotiffError is ValueError:  # tomotiff not importable here (--sdm conda): give stop
        return None
    from tomotiff.source import Hdf5Source, TiffDirSource
    from tomotiff.synthetic import demo_length

    demo = DEMO_INPUT.fullmatch(scan["input"])
    if demo and not os.path.exists(scan["input"]):  # made by this workflow: its length is known
        return demo_length(scan["input"].split("/")[2])
    if not os.path.exists(scan["input"]):
        return None

    try:
        if scan["kind"] == "hdf5":
            source = Hdf5Source(scan["input"], scan["dataset"], scan["axis"], scan["begin"])
            source.close()
        else:
            source = TiffDirSource(scan["input"], scan["input_pattern"], scan["begin"])
    except TomotiffError:
        return None
    return source.stop


@functools.cache
def kinds_in_range(scan_id: str) -> dict[str, list[int]] | None:
    """For a split_keys scan: the indices of each kind of image (projections, flats, darks) in
    the scan's range, from its image_key (HDF5 metadata-sized, read once per scan, in input
    functions only, as source_stop). None when they cannot be read: the scan's jobs then fail
    saying why, with the CLI's message, naming the scan."""
    scan = SCANS[scan_id]
    span = scan_range(scan)
    if TomotiffError is ValueError or span is None:
        return None
    from tomotiff.keys import KEY_NAMES, RawScan
    from tomotiff.source import Hdf5Source
    from tomotiff.synthetic import demo_image_keys

    if DEMO_INPUT.fullmatch(scan["input"]) and not os.path.exists(scan["input"]):
        keys = demo_image_keys(scan["input"].split("/")[2])
        found = None if keys is None else RawScan("demo", keys)
    else:
        try:
            source = Hdf5Source(scan["input"], scan["dataset"], scan["axis"], scan["begin"])
            try:
                found = source.raw_scan(scan["image_key_path"], True)
            finally:
                source.close()
        except TomotiffError:
            return None
    if found is None:
        return None
    return {kind: found.indices(kind, *span).tolist() for kind in KEY_NAMES}


def parts(scan: dict) -> list[str | None]:
    """The kinds of image a scan's bit depth is split into, as `--split-keys` splits it (those
    present in its range), or [None] for one directory. When the keys cannot be read, the
    projections stand for them all: their jobs fail with the reason."""
    if not scan["split_keys"]:
        return [None]
    found = kinds_in_range(scan["id"])
    if found is None:
        return ["projections"]
    return [kind for kind, indices in found.items() if indices]


def scan_range(scan: dict) -> tuple[int, int] | None:
    """begin, stop of a scan: from the config, else from the source's metadata."""
    stop = scan["stop"] if scan["stop"] is not None else source_stop(scan["id"])
    return None if stop is None else (scan["begin"], stop)


def shard_ranges(scan: dict, kind: str | None = None) -> list[tuple[int, int]]:
    """(first, last) of each shard, inclusive. Boundaries fall on multiples of shard_size, so
    only the first shard may be short and a shard keeps its name when begin moves. A stack
    (one file per scan and depth) is one shard: the whole range. With split_keys, a kind's
    shards are those holding at least one image of that kind."""
    begin, stop = scan_range(scan)
    if scan["layout"]["stack"]:
        ranges = [(begin, stop - 1)]
    else:
        size = scan["shard_size"]
        bounds = [begin, *range((begin // size + 1) * size, stop, size), stop]
        ranges = [(a, b - 1) for a, b in zip(bounds, bounds[1:])]
    found = kinds_in_range(scan["id"]) if kind else None
    if found is None:
        return ranges
    return [(first, last) for first, last in ranges if any(first <= i <= last for i in found[kind])]


def shard_manifests(wildcards) -> list[str]:
    """The shard manifests the scan's manifest.json is merged from; for a source that cannot be
    read, its stats.json, whose job fails saying why."""
    scan = scan_of(wildcards)
    if scan_range(scan) is None:
        return [stats_path(scan["id"])]
    kind = wildcards.get("kind")
    return [shard_path(scan["id"], wildcards.depth, first, last, kind) for first, last in shard_ranges(scan, kind)]


def manifest_params(wildcards) -> dict:
    scan = scan_of(wildcards)
    return {"id": scan["id"], "depth": wildcards.depth, "keys": selected_keys(scan, wildcards),
            "range": scan_range(scan), "output_pattern": scan["output_pattern"], "tomotiff": TOMOTIFF_VERSION}


# --- deleted images ------------------------------------------------------------------------


def shard_files(scan: dict, record_path: str, first: int, last: int) -> list[str] | None:
    """The files shard first..last wrote: one per image of its range, named by the output
    pattern; or, when only some images are selected (keys, split_keys) or they go into one
    stack file, the files its record lists (a raw scan's keys are data, not config). None when
    the record cannot be read (it is then rewritten)."""
    if scan["keys"] == "all" and not scan["split_keys"] and not scan["layout"]["stack"]:
        return [scan["output_pattern"] % i for i in range(first, last + 1)]
    try:
        with open(record_path) as handle:
            images = json.load(handle)["images"]
        return list(dict.fromkeys(str(entry["file"]) for entry in images))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def forget_shards_with_missing_images(scans: dict[str, dict]) -> None:
    """Remove the record of any shard whose TIFFs are not all there, and the manifest.json of
    its scan and depth, so that this run rewrites just that shard and the manifest.

    Why here, before the DAG is built: the TIFFs cannot be declared outputs (their number is
    known only from the data, and a directory() output would clash with the shards writing
    into it), so Snakemake cannot see a deleted image. A shard's manifest is its record that
    its images exist; when that is false the record goes, and so does the scan's manifest.json
    (it lists the image too): Snakemake never reruns a job whose output is up to date just
    because one of its inputs is missing (that is how temp() files stay deleted), so an input
    function is too late. Only names are checked, with one directory listing per scan and depth
    (and, for a scan with keys or a stack, the shard records, which list the files written);
    `tomotiff verify results/SCAN/DEPTH` checks the checksums. A record exists only once all its
    images are written, and a rewrite replaces each image atomically, so a run in progress is
    never mistaken for a damaged one.
    """
    for scan in scans.values():
        for depth, kind in itertools.product(scan["depths"], KINDS if scan["split_keys"] else [None]):
            work = work_dir(scan["id"], depth, kind)
            try:
                records = [name for name in os.listdir(work) if re.fullmatch(r"\d+-\d+\.json", name)]
            except OSError:
                continue
            present = None
            where = f"{depth}/{kind}" if kind else depth
            for record in sorted(records):
                if present is None:
                    try:
                        present = set(os.listdir(output_dir(scan["id"], depth, kind)))
                    except OSError:
                        present = set()
                first, last = (int(n) for n in record[: -len(".json")].split("-"))
                try:
                    files = shard_files(scan, f"{work}/{record}", first, last)
                except (TypeError, ValueError):  # a pattern the jobs reject anyway
                    break
                if files is None:
                    problem = f"the record of shard {first}-{last} is unreadable"
                else:
                    missing = [name for name in files if name not in present]
                    if not missing:
                        continue
                    more = f" and {len(missing) - 1} more images" if len(missing) > 1 else ""
                    problem = f"{missing[0]}{more} of shard {first}-{last} missing"
                print(f"scan {scan['id']} {where}: {problem}; removed its record and manifest.json so that they "
                      f"are rewritten", file=sys.stderr)
                for path in (f"{work}/{record}", manifest_path(scan["id"], depth, kind)):
                    if os.path.exists(path):
                        os.remove(path)


# --- locks left by a killed run --------------------------------------------------------------


def release_stale_snakemake_locks() -> int | None:
    """Remove Snakemake's lock files when the run that left them is provably dead, so that
    `snakemake --rerun-incomplete` resumes after a SIGKILL or power loss without `--unlock`.

    Snakemake's locks (.snakemake/locks/*.lock) record no process, so it cannot tell a killed
    run from a live one. The main process of every run of this workflow therefore holds an
    flock on .snakemake/tomotiff-run.lock for its lifetime, with its host name in the file; the
    kernel releases an flock when its holder dies, however it dies. If this run takes that lock
    and its last holder ran on this host, no run of the workflow is alive here and the lock
    files are stale. When the lock is held (a live run), or the last holder ran on another host
    (flock may not reach across hosts on a network filesystem), nothing is touched and
    Snakemake's own lock check decides as usual. Returns the descriptor, kept open until exit.
    """
    import fcntl
    import socket

    os.makedirs(".snakemake/locks", exist_ok=True)
    fd = os.open(".snakemake/tomotiff-run.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    host = socket.gethostname()
    previous = os.pread(fd, 1024, 0).decode(errors="replace").split()
    if previous and previous[0] == host:
        stale = [name for name in os.listdir(".snakemake/locks") if re.fullmatch(r"\d+\.(input|output)\.lock", name)]
        for name in stale:
            os.remove(f".snakemake/locks/{name}")
        if stale:
            print(f"removed the Snakemake locks left by a killed run (process {' '.join(previous[1:2])} on {host})",
                  file=sys.stderr)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{host} {os.getpid()}\n".encode(), 0)
    return fd


# In the main process only (not again inside each cluster job), and only while no other run of
# this workflow is alive here: the repair must never touch the files of a run in progress.
if workflow.is_main_process:
    RUN_LOCK = release_stale_snakemake_locks()
    if RUN_LOCK is not None:
        forget_shards_with_missing_images(SCANS)
