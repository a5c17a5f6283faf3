"""Lookups, paths and input functions shared by the rule files (as in snakemake-workflows'
common.smk). The application is the tomotiff library: tomotiff.batch resolves the config and
answers the planning queries (a scan's length, the kinds of image in it, its shards), once
per scan, in input functions; tomotiff.jobs does each job's work. Nothing here reads data.
"""

import os

from snakemake.exceptions import WorkflowError

try:
    import tomotiff
    from tomotiff import batch
    from tomotiff.errors import TomotiffError
except ModuleNotFoundError as exc:
    if exc.name != "tomotiff":
        raise
    raise WorkflowError("tomotiff is not installed where snakemake runs: install it with pip install -e . "
                        "from the repository (README, 'Many scans')") from None

ENV = "../envs/tomotiff.yaml"
VERSION = tomotiff.__version__  # a parameter of the jobs that write, so upgrading tomotiff reruns them


wildcard_constraints:
    scan=batch.SCAN_ID,
    depth="u8|u16|f32",
    first=r"\d+",
    last=r"\d+",
    name=batch.SCAN_ID,
    kind="|".join(batch.KINDS),


# --- the batch ---------------------------------------------------------------------------------


try:  # validated against config/schema.yaml (defaults filled in), each error one line naming scan and key
    SCANS = batch.load(config, os.path.join(workflow.basedir, "config", "schema.yaml"))
except TomotiffError as exc:
    raise WorkflowError(str(exc)) from None
PLANNER = batch.Planner(SCANS)


# --- paths (everything under results/{scan}; logs under logs/{scan}) ------------------------
# With split_keys, each kind of image (wildcard kind) has its own directory below the bit
# depth's, with its own shards and manifest.json, as `--split-keys` writes them.

STATS = "results/{scan}/stats.json"
WINDOW = "results/{scan}/.work/window-{depth}.json"
# A shard job writes every bit depth of its images from one read; its receipt lists the partial
# manifest (record) it wrote for each depth, under results/{scan}/.work/{depth}[/{kind}]/.
SHARD = "results/{scan}/.work/shards/{first}-{last}.json"
KIND_SHARD = "results/{scan}/.work/shards/{kind}/{first}-{last}.json"
MANIFEST = "results/{scan}/{depth}/manifest.json"
KIND_MANIFEST = "results/{scan}/{depth}/{kind}/manifest.json"


def stats_path(scan: str) -> str:
    return STATS.replace("{scan}", scan)


def window_path(scan: str, depth: str) -> str:
    return WINDOW.replace("{scan}", scan).replace("{depth}", depth)


def shard_path(scan: str, first: int, last: int, kind: str | None = None) -> str:
    return batch.receipt_path(scan, first, last, kind)


def manifest_path(scan: str, depth: str, kind: str | None = None) -> str:
    return batch.destination(scan).manifest(depth, kind)


def final_outputs(wildcards) -> list[str]:
    """Every scan's stats and its manifest per bit depth (and kind of image, with split_keys).
    An input function, so that image keys are read only when the DAG is built."""
    outputs = []
    for scan_id, scan in SCANS.items():
        outputs.append(stats_path(scan_id))
        outputs.extend(manifest_path(scan_id, depth, kind) for depth in scan["depths"] for kind in PLANNER.parts(scan_id))
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
    return [path] if batch.DEMO_INPUT.fullmatch(path) or os.path.exists(path) else []


def source_spec(scan: dict) -> dict:
    """What opens the source (the crop and the image_key dataset too: they change the window,
    the statistics and every image). The absolute path is one as well: every TIFF records it, so
    a relative input seen from a moved working directory reruns the scan."""
    keys = ("id", "kind", "input", "dataset", "axis", "input_pattern", "begin", "stop", "crop", "image_key_path")
    return {**{key: scan[key] for key in keys}, "source": os.path.abspath(scan["input"])}


def window_params(wildcards) -> dict:
    scan = scan_of(wildcards)
    return {**source_spec(scan), "depth": wildcards.depth, "window": scan["windows"][wildcards.depth],
            "mask": scan["mask"], "tomotiff": VERSION}


def stats_windows(wildcards) -> list[str]:
    scan = scan_of(wildcards)
    return [window_path(scan["id"], depth) for depth in scan["windows"]]


def stats_params(wildcards) -> dict:
    scan = scan_of(wildcards)
    return {**source_spec(scan), "reference": scan["reference"], "mask": scan["mask"], "tomotiff": VERSION}


def stats_manifests(wildcards) -> list[str]:
    """The scan's manifests, whose clipping stats.json summarises (none for a source that cannot
    be read: its manifests wait for stats.json, whose job fails saying why)."""
    scan = scan_of(wildcards)
    if PLANNER.scan_range(scan["id"]) is None:
        return []
    return [manifest_path(scan["id"], depth, kind) for depth in scan["depths"] for kind in PLANNER.parts(scan["id"])]


def shard_windows(wildcards) -> list[str]:
    return [window_path(wildcards.scan, depth) for depth in scan_of(wildcards)["windows"]]


def selected_keys(scan: dict, wildcards) -> str:
    """Which images a shard or manifest job handles: the kind of its directory (split_keys), else keys."""
    return wildcards.get("kind") or scan["keys"]


def shard_params(wildcards) -> dict:
    """Everything that determines a shard's images (the windows come in its input files): the bit
    depths, which images (keys), and how they are laid out (compression, imagej, stack, bin),
    besides the source. Only these jobs see keys and the layout, so changing them rewrites the
    images and the manifests, never the windows or the statistics."""
    scan = scan_of(wildcards)
    return {
        **source_spec(scan),
        "first": int(wildcards.first),
        "last": int(wildcards.last),
        "depths": scan["depths"],
        "keys": selected_keys(scan, wildcards),
        "split": bool(wildcards.get("kind")),
        "scan_range": list(PLANNER.scan_range(scan["id"])),
        "layout": scan["layout"],
        "output_pattern": scan["output_pattern"],
        "tomotiff": VERSION,
    }


def shard_manifests(wildcards) -> list[str]:
    """The receipts of the shards a manifest.json is merged from; for a source that cannot be read,
    its stats.json, whose job fails saying why."""
    scan = scan_of(wildcards)
    if PLANNER.scan_range(scan["id"]) is None:
        return [stats_path(scan["id"])]
    kind = wildcards.get("kind")
    return [shard_path(scan["id"], *shard, kind) for shard in PLANNER.shard_ranges(scan["id"], kind)]


def manifest_params(wildcards) -> dict:
    scan = scan_of(wildcards)
    return {"id": scan["id"], "depth": wildcards.depth, "keys": selected_keys(scan, wildcards),
            "range": PLANNER.scan_range(scan["id"]), "output_pattern": scan["output_pattern"], "tomotiff": VERSION}


# --- deleted images (see tomotiff.batch.forget_incomplete_shards: why, and why it is safe) ---

if workflow.is_main_process:
    batch.forget_incomplete_shards(SCANS)
