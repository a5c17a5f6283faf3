"""Finding an image dataset in an HDF5/NeXus file, with errors that list what exists.

Beamline files reach their data through soft and external links, some of them dangling
(the detector file was never copied). Every path is resolved one link at a time so the
error can name the missing target instead of HDF5's generic 'unable to open'.
"""

import os
import re
from collections.abc import Iterator

import h5py
import numpy as np

from tomotiff.errors import TomotiffError
from tomotiff.files import check_input_file

_MAX_LISTED = 12


def open_file(path: str, rdcc_nbytes: int = 1 << 20) -> h5py.File:
    """Open ``path`` read-only, with a one-line error for anything but a complete, readable HDF5
    file: missing, a directory, a FIFO (which would hang), empty, unreadable, not HDF5, truncated,
    locked by its writer."""
    check_input_file(path, "nxs2tiff reads an HDF5/NeXus file (use tiff2tiffux for TIFF directories)")
    try:
        return h5py.File(path, "r", rdcc_nbytes=rdcc_nbytes)
    except OSError as exc:
        if not h5py.is_hdf5(path):
            raise TomotiffError(f"{path} is not an HDF5 file; give an HDF5/NeXus file (.nxs, .h5, .hdf)") from None
        reason = str(exc).splitlines()[0]
        truncated = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", reason)
        if truncated:
            raise TomotiffError(
                f"{path} is truncated: it has {truncated[1]} of the {truncated[2]} bytes HDF5 expects; "
                "copy it again (or wait until its writer has finished)"
            ) from None
        if "unable to lock file" in reason:
            raise TomotiffError(
                f"{path} is locked by a program writing it (HDF5 file locking); wait until it has "
                "finished, or set HDF5_USE_FILE_LOCKING=FALSE to read it as it is"
            ) from None
        raise TomotiffError(f"cannot open {path}: {reason}; if it is damaged or was cut short, copy it again") from None


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
    if isinstance(obj, h5py.Dataset) and obj.is_virtual:
        _check_virtual_sources(file, "/" + path.strip("/"), obj)
    return "/" + path.strip("/"), obj


def _check_virtual_sources(file: h5py.File, path: str, dataset: h5py.Dataset) -> None:
    """A virtual dataset (VDS) reads as its fill value wherever a source file or dataset is missing,
    silently: refuse it, naming what is missing, as for a dangling external link."""
    missing = sorted(
        {
            f"{source.file_name}:{source.dset_name}"
            for source in dataset.virtual_sources()
            if not _virtual_source_exists(file.filename, source.file_name, source.dset_name)
        }
    )
    if missing:
        sources = len({(s.file_name, s.dset_name) for s in dataset.virtual_sources()})
        shown = ", ".join(missing[:_MAX_LISTED]) + (
            f" and {len(missing) - _MAX_LISTED} more" if len(missing) > _MAX_LISTED else ""
        )
        raise TomotiffError(
            f"dataset {path} in {file.filename} is a virtual dataset whose sources are missing ({len(missing)} of "
            f"{sources}: {shown}); HDF5 would read its fill value there, silently. Copy the source files beside "
            f"{os.path.basename(file.filename)} (relative names are looked for there) or give a dataset that holds "
            "its data"
        )


def _virtual_source_exists(vds_file: str, name: str, dataset: str) -> bool:
    """Whether a VDS source opens, looked for where HDF5 looks for it: "." is the VDS file itself; a
    name is tried under $HDF5_VDS_PREFIX, in the VDS file's directory and in the working directory,
    as given and by its base name (HDF5 strips an absolute name's directory when it is missing)."""
    if name == ".":
        candidates = [vds_file]
    else:
        beside = os.path.dirname(os.path.abspath(vds_file))
        prefix = os.environ.get("HDF5_VDS_PREFIX")
        candidates = [
            *([os.path.join(prefix, name)] if prefix else []),
            os.path.join(beside, name),
            os.path.join(beside, os.path.basename(name)),
            name,
            os.path.basename(name),
        ]
    for candidate in candidates:
        if os.path.isfile(candidate):
            try:
                with h5py.File(candidate, "r") as source:
                    return isinstance(source.get(dataset), h5py.Dataset)
            except OSError:
                continue
    return False


STACK_RANK = 3  # a stack of images: the image index and two image dimensions (more if singleton)
STACKS = f"stacks of images (numeric datasets of rank >= {STACK_RANK})"  # the one wording, in every message


def image_datasets(file: h5py.File) -> list[tuple[str, h5py.Dataset]]:
    """The stacks of images reachable from the root (links followed, dangling ones skipped)."""
    return [(name, obj) for name, obj in walk(file) if isinstance(obj, h5py.Dataset) and _is_stack(obj)]


def _is_stack(dataset: h5py.Dataset) -> bool:
    return dataset.ndim >= STACK_RANK and dataset.dtype.kind in "uifb"


def _listing(file: h5py.File) -> str:
    found = image_datasets(file)
    if not found:
        return f"the file holds no {STACKS}{_dangling_listing(file)}"
    shown = ", ".join(f"/{name} {obj.shape} {obj.dtype}" for name, obj in found[:_MAX_LISTED])
    more = f" and {len(found) - _MAX_LISTED} more" if len(found) > _MAX_LISTED else ""
    return f"image datasets there: {shown}{more}; choose one with -d"


def _dangling_listing(file: h5py.File) -> str:
    """ "; its links ... do not resolve: ..." for the links that point nowhere (where image data
    usually is, when a file was copied without its detector or intermediate files), else ""."""
    dangling = list(dangling_links(file))
    if not dangling:
        return ""
    shown = ", ".join(f"/{name} -> {target}" for name, target in dangling[:_MAX_LISTED])
    more = f" and {len(dangling) - _MAX_LISTED} more" if len(dangling) > _MAX_LISTED else ""
    files = sorted({target.split(":", 1)[0] for _, target in dangling if ":" in target})
    fix = f"; copy {', '.join(files)} beside {os.path.basename(file.filename)}" if files else ""
    return f"; these links do not resolve: {shown}{more}{fix}"


def dangling_links(file: h5py.File) -> Iterator[tuple[str, str]]:
    """(path, target) of every soft or external link below the groups that open, whose target does
    not (an external target is "file:path", a soft one its path)."""
    for name, obj in [("", file), *walk(file)]:
        if not isinstance(obj, h5py.Group):
            continue
        for member in sorted(obj):
            link = obj.get(member, getlink=True)
            if isinstance(link, h5py.ExternalLink | h5py.SoftLink) and obj.get(member) is None:
                target = f"{link.filename}:{link.path}" if isinstance(link, h5py.ExternalLink) else link.path
                yield f"{name}/{member}".lstrip("/"), target


def walk(group: h5py.Group, prefix: str = "") -> Iterator[tuple[str, h5py.Dataset | h5py.Group]]:
    """Every group and dataset below ``group``, depth first in name order, each object once.

    Links that resolve are followed and dangling ones skipped; h5py objects compare equal when
    they are the same object of the same file, so soft-link cycles end and the hard-linked
    copies NeXus writers make (NXdata links to the detector's data) are listed once."""
    yield from _walk(group, prefix, {group})


def _walk(group: h5py.Group, prefix: str, seen: set) -> Iterator[tuple[str, h5py.Dataset | h5py.Group]]:
    for name in sorted(group):
        try:
            obj = group[name]
        except (KeyError, OSError, ValueError):
            continue
        if obj in seen:
            continue
        seen.add(obj)
        yield f"{prefix}{name}", obj
        if isinstance(obj, h5py.Group):
            yield from _walk(obj, f"{prefix}{name}/", seen)


class BrokenPath(Exception):
    """A path that does not lead to an object: ``missing`` when a component does not exist,
    ``external`` when an external link's file is missing (the message then says where it was
    looked for), else a dangling soft link or a dataset where a group should be."""

    def __init__(self, message: str, missing: bool = False, external: bool = False):
        super().__init__(message)
        self.missing, self.external = missing, external


def follow(file: h5py.File, path: str) -> h5py.Dataset | h5py.Group:
    """The object at ``path``, followed one link at a time so that :class:`BrokenPath` can say
    which component is missing, or which link does not resolve and where it points."""
    node: h5py.Dataset | h5py.Group = file
    walked = ""
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, h5py.Group):
            raise BrokenPath(f"{walked!r} in {file.filename} is a dataset, not a group")
        walked += "/" + part
        link = node.get(part, getlink=True)
        if link is None:
            raise BrokenPath(f"{walked!r} does not exist", missing=True)
        try:
            node = node[part]
        except (KeyError, OSError, ValueError):
            raise BrokenPath(_broken_link(file, walked, link), external=isinstance(link, h5py.ExternalLink)) from None
    return node


def _resolve(file: h5py.File, path: str) -> h5py.Dataset | h5py.Group:
    """The object at ``path``, or a one-line error naming what breaks and listing the datasets."""
    try:
        return follow(file, path)
    except BrokenPath as broken:
        if broken.missing:
            raise TomotiffError(f"dataset {path!r} not found in {file.filename}; {_listing(file)}") from None
        raise TomotiffError(str(broken) if broken.external else f"{broken}; {_listing(file)}") from None


def _broken_link(file: h5py.File, walked: str, link) -> str:
    if isinstance(link, h5py.ExternalLink):
        beside = os.path.join(os.path.dirname(os.path.abspath(file.filename)), os.path.basename(link.filename))
        return (
            f"{walked!r} in {file.filename} is an external link to {link.filename}:{link.path}, "
            f"which cannot be opened: the file is missing (looked for it there and at {beside}); "
            "copy it there or give the detector file itself"
        )
    if isinstance(link, h5py.SoftLink):
        return f"{walked!r} in {file.filename} is a soft link to {link.path!r}, which does not exist"
    return f"{walked!r} in {file.filename} cannot be opened"


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
        raise TomotiffError(
            f"the NeXus @default chain of {file.filename} ends at {path!r}, which names no @signal; {_listing(file)}"
        )
    signals = [name for name, obj in walk(file) if isinstance(obj, h5py.Group) and _is_nxdata_with_signal(obj)]
    if len(signals) == 1:
        return signals[0]
    why = (
        "names no NeXus default signal (@default/@signal)"
        if not signals
        else (f"has {len(signals)} NXdata groups with a signal ({', '.join('/' + s for s in signals[:4])})")
    )
    raise TomotiffError(f"{file.filename} {why}; {_listing(file)}")


def _is_nxdata_with_signal(group: h5py.Group) -> bool:
    return _text(group.attrs.get("NX_class", "")) == "NXdata" and group.attrs.get("signal") is not None


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray):
        return _text(value.reshape(-1)[0])
    return str(value)


def text_attribute(obj: h5py.HLObject, name: str) -> str | None:
    """An attribute as text (bytes, str or a one-element array of either), or None if absent."""
    value = obj.attrs.get(name)
    return None if value is None else _text(value)
