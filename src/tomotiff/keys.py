"""Raw-scan awareness: which images of an NXtomo scan are projections, flats or darks.

NXtomo raw scans mark each image with ``image_key`` (0 projection, 1 flat, 2 dark,
3 invalid). Writers disagree on the details: GDA stores it as float64 (0.0, 1.0, 2.0),
pre-allocated datasets of aborted scans keep NaN fill values, and the dataset sits at
different paths per beamline. Keys are therefore read as float64, compared by value
(NaN never matches), and looked for first at the known paths, then anywhere in the file.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import h5py
import numpy as np

from tomotiff import hdf5
from tomotiff.errors import TomotiffError

KEY_NAMES = {"projections": 0, "flats": 1, "darks": 2}
SELECTIONS = (*KEY_NAMES, "all")

# Where NXtomo writers put the keys, most specific first; others are found by the walk.
KNOWN_PATHS = (
    "/entry1/tomo_entry/instrument/detector/image_key",  # GDA NXtomo (i12, i13)
    "/entry/instrument/detector/image_key",  # NXtomo application definition
    "/entry/tomo_entry/instrument/detector/image_key",
    "/entry/instrument/imaging/image_key",  # DIAD (k11)
    "/entry1/instrument/image_key",
    "/entry1/instrument/tomoScanDevice/image_key",  # GDA scannable holding the keys
    "/entry/data/image_key",  # NXtomo's NXdata link
    "/entry1/tomo_entry/data/image_key",
)
_MAX_LISTED = 8


def find_image_key(file: h5py.File, length: int, path: str | None = None) -> tuple[str, np.ndarray] | None:
    """The image-key dataset's path and its keys as float64, or None when the file has none.

    With ``path`` (the user's ``--image-key-path``) that dataset must exist and match the
    image axis; a wrong explicit choice is an error, never silently ignored. Without it,
    only a 1-D numeric dataset of ``length`` entries counts, so a key array that belongs
    to another detector (or another scan) is not applied to these images.
    """
    found = _find(file, length, path)
    return None if found is None else (found[0], _read(found[1], found[0]))


def _find(file: h5py.File, length: int, path: str | None) -> tuple[str, h5py.Dataset] | None:
    if path is not None:
        return _normalise(path), _explicit(file, path, length)
    return next(((found, dataset) for found, dataset in _candidates(file) if _fits(dataset, length)), None)


def indices_for(keys: np.ndarray, selection: str) -> np.ndarray:
    """Sorted int64 indices of the images in ``selection`` ("all" takes every image)."""
    if selection == "all":
        return np.arange(len(keys), dtype=np.int64)
    if selection not in KEY_NAMES:
        raise TomotiffError(f"unknown image selection {selection!r}: choose one of {', '.join(SELECTIONS)}")
    return np.flatnonzero(np.asarray(keys, np.float64) == KEY_NAMES[selection]).astype(np.int64)


def key_counts(keys: np.ndarray) -> dict[str, int]:
    """How many images of each kind; "other" counts invalid (3), NaN and unknown codes."""
    keys = np.asarray(keys, np.float64)
    counts = {name: int(np.count_nonzero(keys == code)) for name, code in KEY_NAMES.items()}
    counts["other"] = int(keys.size - sum(counts.values()))
    return counts


def restrict(indices: np.ndarray, begin: int, stop: int | None = None) -> np.ndarray:
    """The ``indices`` within ``begin..stop-1`` (stop None: no upper bound), so -b/-s still apply."""
    indices = np.asarray(indices, np.int64)
    keep = indices >= begin if stop is None else (indices >= begin) & (indices < stop)
    return indices[keep]


def _explicit(file: h5py.File, path: str, length: int) -> h5py.Dataset:
    """The dataset the user named, or a one-line error saying what is wrong with it."""
    where = f"--image-key-path {path!r} in {file.filename}"
    try:
        dataset = hdf5.follow(file, path)
    except hdf5.BrokenPath as broken:
        raise TomotiffError(f"{where}: {broken}; {_listing(file)}") from None
    if not isinstance(dataset, h5py.Dataset):
        raise TomotiffError(f"{where} is a group, not a dataset; {_listing(file)}")
    if dataset.dtype.kind not in "uif":
        raise TomotiffError(f"{where} has type {dataset.dtype}; image keys must be numbers (0, 1, 2)")
    if dataset.ndim != 1:
        raise TomotiffError(f"{where} has rank {dataset.ndim}, shape {dataset.shape}; image keys must be 1-D")
    if dataset.shape[0] != length:
        raise TomotiffError(
            f"{where} has {dataset.shape[0]} keys but the image axis has {length} images; "
            "give the key dataset of this scan"
        )
    return dataset


def _candidates(file: h5py.File) -> Iterator[tuple[str, h5py.Dataset]]:
    """Datasets that may hold the keys: the known paths, then every ``image_key`` in the file."""
    for path in KNOWN_PATHS:
        try:
            dataset = hdf5.follow(file, path)
        except hdf5.BrokenPath:
            continue
        if isinstance(dataset, h5py.Dataset):
            yield path, dataset
    yield from _walk_keys(file)


def _walk_keys(file: h5py.File) -> Iterator[tuple[str, h5py.Dataset]]:
    """Every dataset named ``image_key`` (hdf5.walk's order: depth first, by name)."""
    for name, obj in hdf5.walk(file):
        if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] == "image_key":
            yield f"/{name}", obj


def _fits(dataset: h5py.Dataset, length: int) -> bool:
    return dataset.dtype.kind in "uif" and dataset.ndim == 1 and dataset.shape[0] == length


def _read(dataset: h5py.Dataset, path: str) -> np.ndarray:
    try:
        return np.asarray(dataset[()], dtype=np.float64)
    except (OSError, ValueError, RuntimeError) as exc:
        raise TomotiffError(
            f"cannot read image keys {path} in {dataset.file.filename}: {str(exc).splitlines()[0]}"
        ) from None


def _listing(file: h5py.File) -> str:
    found = list(_walk_keys(file))
    if not found:
        return "the file holds no dataset named image_key"
    shown = ", ".join(f"{name} {obj.shape} {obj.dtype}" for name, obj in found[:_MAX_LISTED])
    more = f" and {len(found) - _MAX_LISTED} more" if len(found) > _MAX_LISTED else ""
    return f"image_key datasets there: {shown}{more}"


def _normalise(path: str) -> str:
    return "/" + path.strip("/")


@dataclass(frozen=True)
class RawScan:
    """The image keys of a raw scan (as float64, compared by value), and the image sets they define."""

    path: str
    keys: np.ndarray
    integer: bool = False  # the dataset stores integers: record keys as 0, 1, 2, not 0.0, 1.0, 2.0

    def key(self, index: int) -> int | float:
        """Image ``index``'s key, in the dataset's own kind of number (for the metadata)."""
        value = float(self.keys[index])
        return int(value) if self.integer else value

    def indices(self, selection: str, begin: int, stop: int) -> np.ndarray:
        return restrict(indices_for(self.keys, selection), begin, stop)

    def window_images(self, begin: int, stop: int, otherwise: np.ndarray) -> np.ndarray:
        """The images a default window comes from: the projections in range (darks and flats
        would skew it), or ``otherwise`` when the range holds none."""
        projections = self.indices("projections", begin, stop)
        return projections if projections.size else otherwise

    def outputs(self, selection: str, split: bool, begin: int, stop: int) -> list[tuple[str, np.ndarray]]:
        """(kind, indices) to write: ``selection`` ("" for the kind), or with ``split`` one set per
        kind present. An empty selection is an error naming what the range holds."""
        if split:
            return [(name, found) for name in KEY_NAMES if (found := self.indices(name, begin, stop)).size]
        found = self.indices(selection, begin, stop)
        if not found.size:
            raise TomotiffError(
                f"no {selection} among images {begin}..{stop - 1} ({self.path}: "
                f"{key_counts(self.keys)}); check --keys, -b and -s"
            )
        return [("", found)]


def raw_scan(file: h5py.File, length: int, path: str | None, required: bool) -> RawScan | None:
    """The scan's image keys; ``required`` (--keys, --split-keys) makes their absence an error."""
    found = _find(file, length, path)
    if found is None:
        if required:
            raise TomotiffError(
                f"{file.filename} has no image_key dataset of {length} entries; "
                "give its path with --image-key-path, or drop --keys/--split-keys"
            )
        return None
    name, dataset = found
    return RawScan(name, _read(dataset, name), dataset.dtype.kind in "ui")
