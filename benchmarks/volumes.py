"""Write one case's input volume, with tomotiff.synthetic's images, in a process of its own.

bench.py runs this as a subprocess so that the measuring process never holds numpy, h5py
or an image: a child's peak RSS reads no lower than its parent's (see measure.py).
tomotiff.synthetic writes the Savu-like (A), GDA-like (C) and TIFF-directory (D) layouts
at any size; B's contiguous (index, H, W) reconstruction is assembled here from its slices,
the compressed C cases from its projections (write_gda_raw has no filters), and BIG from one
chunk layer of its slices. Every writer goes one image (BIG: one chunk layer) at a time, so
memory stays flat at any volume size.

    volumes.py CASE IMAGES PATH [--link LINK]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
from cases import SPECS, TIFF_PATTERN, CaseSpec

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


def filters(name: str) -> dict:
    """create_dataset's keywords for a compressed case's chunks, as the beamlines' writers set them:
    BLISS's gzip + shuffle (level 1 here, for writing speed), the detectors' bitshuffle-LZ4 and Blosc."""
    if name == "gzip":
        return {"compression": "gzip", "compression_opts": 1, "shuffle": True}
    if name == "bslz4":
        return dict(hdf5plugin.Bitshuffle(cname="lz4"))
    if name == "blosc":
        return dict(hdf5plugin.Blosc(cname="zstd", shuffle=hdf5plugin.Blosc.BITSHUFFLE))
    raise ValueError(f"no filters named {name!r}")


def write_gda(spec: CaseSpec, images: int, path: Path) -> None:
    """Projections only (no darks or flats), so every image is converted."""
    height, width = spec.image_shape
    if spec.compression:
        write_gda_compressed(spec, images, path)
        return
    synthetic.write_gda_raw(str(path), projections=images, flats=0, darks=0, height=height, width=width)


def write_gda_compressed(spec: CaseSpec, images: int, path: Path) -> None:
    """write_gda_raw's file (projections only, the same images, image_key and links) with the case's
    filters on its one-image chunks: synthetic.py's noisy counts compress about as real ones do."""
    height, width = spec.image_shape
    with h5py.File(path, "w") as f:
        entry = f.create_group("entry1")
        entry.attrs["NX_class"] = "NXentry"
        chunks = (1, height, width)
        data = f.create_dataset(
            spec.dataset, (images, height, width), spec.dtype, chunks=chunks, **filters(spec.compression)
        )
        for index in range(images):
            data[index] = synthetic.projection(index, height, width)
        tomo = entry.create_group("tomo_entry")
        tomo.attrs.update({"NX_class": "NXentry", "definition": "NXtomo"})
        tomo.create_dataset("instrument/detector/image_key", data=synthetic.raw_keys(images, 0, 0))
        tomo.create_group("data").attrs.update({"NX_class": "NXdata", "signal": "data"})
        tomo["data/data"] = h5py.SoftLink(spec.dataset)


def write_tiffs(spec: CaseSpec, images: int, path: Path) -> None:
    height, width = spec.image_shape
    synthetic.write_tiff_dir(str(path), TIFF_PATTERN, count=images, height=height, width=width, dtype=spec.dtype)


BIG_OFFSET = 1e-5  # per chunk layer, cycling over 16 layers: well inside the recon window


def big_layer(spec: CaseSpec, depth: int) -> np.ndarray:
    """One chunk layer of `depth` distinct slices, (H, depth, W), drawn once for the whole volume."""
    height, width = spec.image_shape
    layer = np.empty((height, depth, width), np.float32)
    for index in range(depth):
        layer[:, index, :] = synthetic.recon_slice(index, height, width)
    return layer


def write_big(spec: CaseSpec, images: int, path: Path) -> None:
    """A volume larger than RAM in about the time the disk takes to write it. Fresh noise for every
    image (synthetic.py) would take tens of minutes, and writing one image at a time would
    rewrite every partial chunk: so one chunk layer is drawn once and written whole, layer after
    layer, each shifted by a small offset (no two neighbouring layers are equal, and every value
    still needs quantising). Memory: two layers (256 MiB at (1024, 32, 1024))."""
    height, width = spec.image_shape
    chunks = tuple(min(c, s) for c, s in zip(spec.chunks, (height, images, width)))
    depth = chunks[1]
    base = big_layer(spec, depth)
    layer = np.empty_like(base)
    with h5py.File(path, "w") as f:
        data = f.create_dataset(spec.dataset, (height, images, width), spec.dtype, chunks=chunks)
        for start in range(0, images, depth):
            np.add(base, np.float32(BIG_OFFSET * (start // depth % 16)), out=layer)
            count = min(depth, images - start)
            data[:, start : start + count, :] = layer[:, :count, :]


WRITERS = {"savu": write_savu, "stack": write_stack, "gda": write_gda, "tiff": write_tiffs, "big": write_big}


def write_peer_link(spec: CaseSpec, volume: Path, link: Path) -> None:
    """nabu-cast reads `<entry>/results/data`; an external link points that at the case's dataset."""
    with h5py.File(link, "w") as f:
        f["/entry/results/data"] = h5py.ExternalLink(str(volume.resolve()), spec.dataset)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=sorted(SPECS))
    parser.add_argument("images", type=int)
    parser.add_argument("path", type=Path, help="the HDF5 file, or the TIFF directory, to create")
    parser.add_argument("--link", type=Path, help="also write an HDF5 file linking nabu-cast's path to the data")
    args = parser.parse_args()
    spec = SPECS[args.case]
    WRITERS[spec.layout](spec, args.images, args.path)
    if args.link:
        write_peer_link(spec, args.path, args.link)


if __name__ == "__main__":
    main()
