"""The naive per-image loop that tomotiff is measured against.

It is what a user would write in a notebook: default h5py slicing (so a
Savu-like volume chunked across the image axis is read the slow way), a
numpy clip/scale/round/cast per image and one tifffile.imwrite per image.
Without --lo/--hi it just copies the float32 images. With --hdf5plugin it imports
hdf5plugin first, as a user must to read bitshuffle or Blosc chunks (h5py then
decodes every chunk itself, one at a time).

    naive.py IN.h5 OUTDIR -d DATASET -i AXIS [--lo=LO --hi=HI] [--hdf5plugin]
    naive.py INDIR OUTDIR --pattern recon_%05d.tif [--lo=LO --hi=HI]
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import tifffile


def h5_images(path: Path, dataset: str, axis: int) -> Iterator[np.ndarray]:
    """Yield images the way a user would: `dset[:, i, :]` for axis 1, `dset[i]` for axis 0."""
    with h5py.File(path, "r") as f:
        dset = f[dataset]
        for i in range(dset.shape[axis]):
            yield dset[(slice(None),) * axis + (i,)]


def tiff_images(directory: Path, pattern: str) -> Iterator[np.ndarray]:
    """Yield recon_00000.tif, recon_00001.tif, ... until the first missing index."""
    i = 0
    while (path := directory / (pattern % i)).exists():
        yield tifffile.imread(path)
        i += 1


def to_uint8(image: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] linearly onto 0..255, as a straightforward numpy expression."""
    return np.round((np.clip(image, lo, hi) - lo) * (255.0 / (hi - lo))).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="HDF5 file, or directory of TIFFs")
    parser.add_argument("outdir", type=Path)
    parser.add_argument("-d", "--dataset", help="HDF5 dataset path (absent: source is a TIFF directory)")
    parser.add_argument("-i", "--axis", type=int, default=0, help="image index axis of the HDF5 dataset")
    parser.add_argument("--pattern", default="recon_%05d.tif", help="TIFF file name pattern")
    parser.add_argument("--lo", type=float, help="value mapped to 0 (absent: keep float32)")
    parser.add_argument("--hi", type=float, help="value mapped to 255")
    parser.add_argument("--hdf5plugin", action="store_true", help="import hdf5plugin (compressed chunks)")
    args = parser.parse_args()
    if args.hdf5plugin:  # only then: the uncompressed cases' figures stay those of plain h5py
        import hdf5plugin  # noqa: F401  (registers the filters with HDF5)

    if args.dataset:
        images = h5_images(args.source, args.dataset, args.axis)
    else:
        images = tiff_images(args.source, args.pattern)
    args.outdir.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        if args.lo is not None:
            image = to_uint8(image, args.lo, args.hi)
        tifffile.imwrite(args.outdir / f"naive_{i:05d}.tif", image)


if __name__ == "__main__":
    main()
