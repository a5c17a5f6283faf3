"""Finding an image dataset in an HDF5/NeXus file, with errors that list what exists.

Beamline files reach their data through soft and external links, some of them dangling
(the detector file was never copied). Every path is resolved one link at a time so the
error can name the missing target instead of HDF5's generic 'unable to open'.
"""

import os
from collections.abc import Iterator

import h5py
import numpy as np

from tomotiff.errors import TomotiffError

_MAX_LISTED = 12


def open_file(path: str, rdcc_nbytes: int = 1 << 20) -> h5py.File:
    """Open ``path`` read-only, with a clear error for a missing or non-HDF5 file."""
    if not os.path.exists(path):
        raise TomotiffError(f"input file not found: {path}")
    if os.path.isdir(path):
        raise TomotiffError(f"{path} is a directory; nxs2tiff reads an HDF5/NeXus file (use tiff2tiffux for TIFF directories)")
    try:
        return h5py.File(path, "r", rdcc_nbytes=rdcc_nbytes)
    except OSError as exc:
        if not h5py.is_hdf5(path):
            raise TomotiffError(f"{path} is not an HDF5 file; give an HDF5/NeXus file (.nxs, .h5, .hdf)") from None
        raise TomotiffError(f"cannot open {path}: {exc}") from None


def find_dataset(file: h5py.File, path: str | None) -> tuple[str, h5py.Dataset]:
    """The dataset at ``path`` (or the NeXus default signal when None), with its path in this file."""
    if path is None:
        path = _default_signal_path(file)
    obj = _resolve(file, path)
    if isinstance(obj, h5py.Group):
        signal = obj.attrs.get("signal")
        if signal is None:
            raise TomotiffError(f"{path!r} in {file.filename} is a group, not a dataset; {_listing(file)}")
        path = f"{path.rstrip('/')}/{_text(signal)}"
        obj = _resolve(file, path)
    if isinstance(obj, h5py.Dataset) and obj.id.get_create_plist().get_nfilters():
        import hdf5plugin  # noqa: F401  (registers the compression filters beamline files use)
    return "/" + path.strip("/"), obj


def image_datasets(file: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    """Numeric datasets of rank >= 2 reachable from the root (links followed, dangling ones skipped)."""
    return [(name, obj) for name, obj in _walk(file, "", set()) if obj.ndim >= 2 and obj.dtype.kind in "uifb"]


def _listing(file: h5py.File) -> str:
    found = image_datasets(file)
    if not found:
        return "the file holds no image datasets (numeric, rank >= 2)"
    shown = ", ".join(f"/{name} {obj.shape} {obj.dtype}" for name, obj in found[:_MAX_LISTED])
    more = f" and {len(found) - _MAX_LISTED} more" if len(found) > _MAX_LISTED else ""
    return f"image datasets there: {shown}{more}; choose one with -d"


def _walk(group: h5py.Group, prefix: str, seen: set) -> Iterator[tuple[str, h5py.Dataset]]:
    for name, obj in _children(group, prefix, seen):
        if isinstance(obj, h5py.Dataset):
            yield name, obj
        elif isinstance(obj, h5py.Group):
            yield from _walk(obj, f"{name}/", seen)


def _children(group: h5py.Group, prefix: str, seen: set) -> Iterator[tuple[str, h5py.Dataset | h5py.Group]]:
    """The members of ``group`` that open (dangling links skipped), each object once."""
    for name in group:
        try:
            obj = group[name]
        except (KeyError, OSError):
            continue
        if obj not in seen:  # h5py objects compare equal when they are the same object in the same file
            seen.add(obj)
            yield f"{prefix}{name}", obj


def _resolve(file: h5py.File, path: str) -> h5py.Dataset | h5py.Group:
    """Follow ``path`` one component at a time, naming the link that breaks."""
    node: h5py.Group = file
    walked = ""
    for part in [p for p in path.split("/") if p]:
        walked += "/" + part
        if not isinstance(node, h5py.Group):
            raise TomotiffError(f"{walked!r}: {node.name!r} in {file.filename} is a dataset, not a group; {_listing(file)}")
        link = node.get(part, getlink=True)
        if link is None:
            raise TomotiffError(f"dataset {path!r} not found in {file.filename}; {_listing(file)}")
        try:
            node = node[part]
        except (KeyError, OSError):
            raise TomotiffError(_broken_link_message(file, walked, link)) from None
    return node


def _broken_link_message(file: h5py.File, walked: str, link) -> str:
    if isinstance(link, h5py.ExternalLink):
        beside = os.path.join(os.path.dirname(os.path.abspath(file.filename)), os.path.basename(link.filename))
        return (
            f"{walked!r} in {file.filename} is an external link to {link.filename}:{link.path}, "
            f"which cannot be opened: the file is missing (looked for it there and at {beside}); "
            "copy it there or give the detector file itself"
        )
    if isinstance(link, h5py.SoftLink):
        return f"{walked!r} in {file.filename} is a soft link to {link.path!r}, which does not exist; {_listing(file)}"
    return f"{walked!r} in {file.filename} cannot be opened; {_listing(file)}"


def _default_signal_path(file: h5py.File) -> str:
    """Follow the NeXus ``@default`` chain to an NXdata group and its ``@signal``; without a
    chain, take the one NXdata group that names a signal (NeXus's older rule)."""
    path, node = "", file
    while isinstance(node, h5py.Group) and node.attrs.get("default") is not None and path.count("/") < 8:
        path = f"{path}/{_text(node.attrs['default'])}"
        node = _resolve(file, path)
    if isinstance(node, h5py.Group) and node.attrs.get("signal") is not None:
        return f"{path}/{_text(node.attrs['signal'])}"
    if path:
        raise TomotiffError(f"the NeXus @default chain of {file.filename} ends at {path!r}, which names no @signal; "
                            f"{_listing(file)}")
    signals = [name for name, _ in _walk_groups(file, "", set()) if _is_nxdata_with_signal(file[name])]
    if len(signals) == 1:
        return signals[0]
    why = "names no NeXus default signal (@default/@signal)" if not signals else (
        f"has {len(signals)} NXdata groups with a signal ({', '.join('/' + s for s in signals[:4])})")
    raise TomotiffError(f"{file.filename} {why}; {_listing(file)}")


def _is_nxdata_with_signal(group: h5py.Group) -> bool:
    return _text(group.attrs.get("NX_class", "")) == "NXdata" and group.attrs.get("signal") is not None


def _walk_groups(group: h5py.Group, prefix: str, seen: set) -> Iterator[tuple[str, h5py.Group]]:
    for name, obj in _children(group, prefix, seen):
        if isinstance(obj, h5py.Group):
            yield name, obj
            yield from _walk_groups(obj, f"{name}/", seen)


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return _text(value.reshape(-1)[0])
    return str(value)
