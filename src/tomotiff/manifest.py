"""What was written, and how (the *manifest* stage): ``manifest.json`` beside the images.

The manifest lists every image (index, file, XXH3-128 checksum, and what identifies it in the
source) under a header saying how the images were made: the source, the images chosen, the
window, the formula, the layout and the versions of the software that shaped the bytes. So any
image can be traced and its original values recovered; :func:`verify` re-checks a directory
against it. Headers and entries are built here and only here, for the commands and the
workflow alike; the workflow's shards write partial manifests that :func:`merge_shards` joins.
"""

import json
import os

from tomotiff import __version__, clipping
from tomotiff.errors import TomotiffError
from tomotiff.files import CHECKSUM, check_input_file, file_checksum, write_atomically

MANIFEST_NAME = "manifest.json"
SHAPING_LIBRARIES = ("numpy", "h5py", "hdf5plugin", "tifffile", "imagecodecs")  # they decide the bytes written
PER_SHARD = ("begin", "stop", "count", "clipping", "images")  # the header keys that differ between a scan's shards


def library_versions() -> dict[str, str]:
    """The versions of tomotiff and of the libraries that shape the output bytes, HDF5 included."""
    from importlib.metadata import PackageNotFoundError, version  # 30 ms at import: only when a manifest is made

    import h5py

    found = {"tomotiff": __version__, "hdf5": h5py.version.hdf5_version}
    for name in SHAPING_LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def image_entry(index: int, origin: dict, written: dict) -> dict:
    """One image's entry: its index, what identifies it in the source (``origin``: its input
    file, its image_key) and where it went (``written``: file, page, checksum)."""
    return {"index": index, **origin, **written}


def write_json(path: str, content: dict) -> None:
    """Write JSON atomically (temporary file in the same directory, then rename)."""
    text = json.dumps(content, indent=1, sort_keys=True) + "\n"
    write_atomically(path, lambda handle: handle.write(text.encode()))


def read_json(path: str) -> dict:
    """A JSON file tomotiff wrote (a window, a shard's record, stats.json), or a one-line error."""
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as exc:
        raise TomotiffError(f"cannot read {path}: {exc}; delete it and run again") from None


def write_manifest(path: str, header: dict, images: list[dict]) -> dict:
    """``header`` says how the images were made; ``images`` lists them in index order, and for
    quantised images the header gains their clipping summary. Returns what was written."""
    images = sorted(images, key=lambda entry: entry["index"])
    found = clipping.summary(images)
    content = {**header, **({"clipping": found} if found else {}), "images": images}
    write_json(path, content)
    return content


def read_manifest(path: str) -> dict:
    """A manifest.json: a JSON object whose ``images`` list entries with ``index``, ``file`` and a
    checksum; anything else is a one-line error (a FIFO is refused before it could block)."""
    if not os.path.exists(path):
        raise TomotiffError(f"no manifest at {path}; was this directory written by tomotiff?")
    if not os.path.isfile(path):  # a FIFO would block the open
        raise TomotiffError(f"manifest {path} is not a regular file; rerun the extraction to rewrite it")
    try:
        with open(path) as handle:
            content = json.load(handle)
    except (OSError, ValueError) as exc:
        raise TomotiffError(f"cannot read manifest {path}: {exc}") from None
    images = content.get("images") if isinstance(content, dict) else None
    if not isinstance(images, list) or not all(
        isinstance(e, dict) and {"index", "file", CHECKSUM} <= set(e) for e in images
    ):
        raise TomotiffError(
            f"manifest {path} is not a tomotiff manifest (it needs a list of images, each with "
            f"index, file and {CHECKSUM}); rerun the extraction to rewrite it"
        )
    return content


def merge_shards(shards: list[dict], begin: int, stop: int, every_image: bool, what: str) -> dict:
    """The manifest of images begin..stop-1 from the manifests of its shards (any order), as one
    run over the whole range would have written it.

    The shards must agree on everything but their range and images, lie in the range in order
    without overlap, and list their images in index order; ``every_image`` (no keys selected)
    also requires every image of the range. ``what`` names the output in messages.
    """
    shards = sorted(shards, key=lambda shard: shard["begin"])
    header = {key: value for key, value in shards[0].items() if key not in PER_SHARD}
    for shard in shards:
        differs = sorted(
            key for key in set(header) | set(shard) if key not in PER_SHARD and shard.get(key) != header.get(key)
        )
        if differs:
            raise TomotiffError(
                f"{what}: the shard of images {shard['begin']}..{shard['stop'] - 1} differs from "
                f"the others in {', '.join(differs)}; delete its shard records and run again"
            )
    images = [entry for shard in shards for entry in shard["images"]]
    indices = [entry["index"] for entry in images]
    disjoint = all(a["stop"] <= b["begin"] for a, b in zip(shards, shards[1:]))
    within = begin <= shards[0]["begin"] and shards[-1]["stop"] <= stop
    inside = all(shard["begin"] <= entry["index"] < shard["stop"] for shard in shards for entry in shard["images"])
    ordered = all(a < b for a, b in zip(indices, indices[1:]))
    if not (disjoint and within and inside and ordered) or every_image and indices != list(range(begin, stop)):
        raise TomotiffError(f"{what}: the shards do not cover images {begin}..{stop - 1} exactly once")
    if not images:
        raise TomotiffError(f"{what}: no images among {begin}..{stop - 1}")
    whole = {"begin": begin, "stop": stop, "count": len(images)}
    kept = {key: whole.get(key, value) for key, value in shards[0].items() if key in whole or key not in PER_SHARD}
    return {**kept, "images": images}  # write_manifest adds the whole range's clipping summary


def verify(directory: str, manifest_name: str = MANIFEST_NAME) -> list[str]:
    """Problems found in ``directory``: missing images, checksum mismatches (empty when all is well)."""
    manifest = read_manifest(os.path.join(directory, manifest_name))
    problems = []
    for entry in manifest["images"]:
        path = os.path.join(directory, entry["file"])
        if not os.path.exists(path):
            problems.append(f"missing: {entry['file']} (image {entry['index']})")
            continue
        try:
            check_input_file(path, "an image listed in manifest.json is a TIFF file")
            with open(path, "rb") as handle:
                digest = file_checksum(handle)
        except (TomotiffError, OSError) as exc:
            problems.append(f"unreadable: {entry['file']} (image {entry['index']}): {exc}")
            continue
        if digest != entry[CHECKSUM]:
            problems.append(f"checksum mismatch: {entry['file']} (image {entry['index']})")
    return problems


def header(
    source_description: dict,
    begin: int,
    stop: int,
    count: int,
    dtype_in,
    dtype_out,
    conversion: dict,
    layout: dict,
    pattern: str,
) -> dict:
    """How an output was made: where from (``source_description``: the source and a raw scan's
    image_key dataset), which range, the types, the conversion, the layout and the versions."""
    return {
        "tomotiff_version": __version__,
        **source_description,
        "begin": begin,
        "stop": stop,
        "count": count,
        "dtype_in": str(dtype_in),
        "dtype_out": str(dtype_out),
        **conversion,
        **layout,
        "output_pattern": pattern,
        "versions": library_versions(),
    }


def image_metadata(manifest_header: dict) -> dict:
    """What each TIFF records of the header: how it was made, without the run's range and versions."""
    return {
        key: value for key, value in manifest_header.items() if key not in (*PER_SHARD, "output_pattern", "versions")
    }
