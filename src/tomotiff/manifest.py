"""What was written, and how (the *manifest* stage): ``manifest.json`` beside the images.

The manifest lists every image (index, file, XXH3-128 checksum) with the source, the window and the
formula, so any image can be traced and its original values recovered; :func:`verify`
re-checks a directory against it.
"""

import json
import os

from tomotiff.errors import TomotiffError
from tomotiff.sink import CHECKSUM, file_checksum, write_error

MANIFEST_NAME = "manifest.json"


def write_json(path: str, content: dict) -> None:
    """Write JSON atomically (temporary file in the same directory, then rename)."""
    temporary = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.part")
    try:
        with open(temporary, "w") as handle:
            json.dump(content, handle, indent=1, sort_keys=True)
            handle.write("\n")
        os.replace(temporary, path)
    except OSError as exc:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise TomotiffError(write_error(path, exc)) from None


def write_manifest(path: str, header: dict, images: list[dict]) -> None:
    """``header`` says how the images were made; ``images`` lists them in index order."""
    write_json(path, {**header, "images": sorted(images, key=lambda entry: entry["index"])})


def read_manifest(path: str) -> dict:
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise TomotiffError(f"no manifest at {path}; was this directory written by tomotiff?") from None
    except (OSError, ValueError) as exc:
        raise TomotiffError(f"cannot read manifest {path}: {exc}") from None


def verify(directory: str, manifest_name: str = MANIFEST_NAME) -> list[str]:
    """Problems found in ``directory``: missing images, checksum mismatches (empty when all is well)."""
    manifest = read_manifest(os.path.join(directory, manifest_name))
    problems = []
    for entry in manifest["images"]:
        path = os.path.join(directory, entry["file"])
        try:
            with open(path, "rb") as handle:
                digest = file_checksum(handle)
        except FileNotFoundError:
            problems.append(f"missing: {entry['file']} (image {entry['index']})")
            continue
        if digest != entry[CHECKSUM]:
            problems.append(f"checksum mismatch: {entry['file']} (image {entry['index']})")
    return problems
