"""Write one case's input volume, with tomotiff.synthetic's images, in a process of its own.

bench.py runs this as a subprocess so that the measuring process never holds numpy, h5py
or an image: a child's peak RSS reads no lower than its parent's (see measure.py).
tomotiff.synthetic writes the Savu-like (A), GDA-like (C) and TIFF-directory (D) layouts
at any size; only B's contiguous (index, H, W) reconstruction is assembled here, from its
slices. Every writer goes one image at a time, so memory stays flat at any volume size.

    volumes.py CASE IMAGES PATH [--link LINK]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
from cases import CASES, TIFF_PATTERN, CaseSpec

from tomotiff import synthetic


def write_savu(spec: CaseSpec, images: int, path: Path) -> None:
    height, width = spec.image_shape
    synthetic.write_savu_recon(str(path), height=height, count=images, width=width, chunks=spec.chunks)


def write_stack(spec: CaseSpec, images: int, path: Path) -> None:
    """synthetic.py has reconstructions only in Savu's (H, index, W): stack its slices on axis 0."""
    height, width = spec.image_shape
    with h5py.File(path, "w") as f:
        data = f.create_dataset(spec.dataset, (images, height, width), spec.dtype, chunks=spec.chunks)
        for index in range(images):
            data[index] = synthetic.recon_slice(index, height, width)


def write_gda(spec: CaseSpec, images: int, path: Path) -> None:
    """Projections only (no darks or flats), so every image is converted."""
    height, width = spec.image_shape
    synthetic.write_gda_raw(str(path), projections=images, flats=0, darks=0, height=height, width=width)


def write_tiffs(spec: CaseSpec, images: int, path: Path) -> None:
    height, width = spec.image_shape
    synthetic.write_tiff_dir(str(path), TIFF_PATTERN, count=images, height=height, width=width, dtype=spec.dtype)


WRITERS = {"savu": write_savu, "stack": write_stack, "gda": write_gda, "tiff": write_tiffs}


def write_peer_link(spec: CaseSpec, volume: Path, link: Path) -> None:
    """nabu-cast reads `<entry>/results/data`; an external link points that at the case's dataset."""
    with h5py.File(link, "w") as f:
        f["/entry/results/data"] = h5py.ExternalLink(str(volume.resolve()), spec.dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("images", type=int)
    parser.add_argument("path", type=Path, help="the HDF5 file, or the TIFF directory, to create")
    parser.add_argument("--link", type=Path, help="also write an HDF5 file linking nabu-cast's path to the data")
    args = parser.parse_args()
    spec = CASES[args.case]
    WRITERS[spec.layout](spec, args.images, args.path)
    if args.link:
        write_peer_link(spec, args.path, args.link)


if __name__ == "__main__":
    main()
