"""Deterministic synthetic scans in the layouts beamlines write, for the demo batch, tests and
benchmarks: a Savu-like reconstruction (image index on the middle axis) and a GDA-like raw
NXtomo scan (uint16 with dark and flat fields marked by ``image_key``).

The same arguments always give the same bytes of pixel data (seeded generator), so outputs
computed from them can be compared across runs and machines.
"""

import os

import h5py
import numpy as np
import tifffile

IMAGE_KEY = {"projection": 0, "flat": 1, "dark": 2}

# The workflow's demo scans (rules/demo_data.smk): the workflow makes these files, so it knows
# their lengths before they exist (see demo_length).
DEMO_SIZES = {
    "savu": {"height": 48, "count": 64, "width": 48, "chunks": (8, 8, 8)},
    "gda": {"projections": 120, "flats": 4, "darks": 4, "height": 24, "width": 32},
    "tiff": {"pattern": "recon_%05d.tif", "count": 40, "height": 32, "width": 40},
}


def demo_length(kind: str) -> int:
    """Images along the image axis of a demo scan of ``kind`` (savu: axis 1, others: axis 0)."""
    sizes = DEMO_SIZES[kind]
    return sizes["count"] if "count" in sizes else sizes["projections"] + sizes["flats"] + sizes["darks"]


def demo_image_keys(kind: str) -> np.ndarray | None:
    """The ``image_key`` of a demo scan of ``kind`` (None: it has none), known before it exists."""
    if kind != "gda":
        return None
    sizes = DEMO_SIZES[kind]
    return raw_keys(sizes["projections"], sizes["flats"], sizes["darks"])


def write_demo(kind: str, name: str, output: str) -> str:
    """Write the workflow's demo scan ``name`` of ``kind`` (savu, gda or tiff) to ``output``,
    seeded by its name; return a line saying so."""
    import zlib

    sizes, seed = DEMO_SIZES[kind], zlib.crc32(name.encode())
    writer = {"savu": write_savu_recon, "gda": write_gda_raw, "tiff": write_tiff_dir}[kind]
    writer(output, seed=seed, **sizes)
    return f"wrote demo {kind} scan {output} (seed {seed})"


def recon_slice(index: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """One float32 reconstructed slice: a disc of attenuation ~1e-3 with seeded noise."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    radius = np.hypot(rows - height / 2, cols - width / 2) / (min(height, width) / 2)
    disc = np.where(radius < 0.8, 1.2e-3, 0.0).astype(np.float32)
    disc += np.float32(2e-4) * np.sin(np.float32(0.2) * (cols + index)).astype(np.float32)
    noise = np.random.default_rng([seed, index]).normal(0, 2e-4, (height, width)).astype(np.float32)
    return disc + noise


def projection(index: int, height: int, width: int, seed: int = 0, level: float = 30000.0) -> np.ndarray:
    """One uint16 raw image: a bright beam profile with an absorbing column and noise."""
    cols = np.arange(width, dtype=np.float64)
    beam = level * (0.8 + 0.2 * np.cos((cols - width / 2) / width * np.pi))
    shadow = np.exp(-(((cols - width / 2 - 0.2 * width * np.sin(index / 10)) / (0.1 * width)) ** 2))
    image = np.tile(beam * (1 - 0.6 * shadow), (height, 1))
    image += np.random.default_rng([seed, index]).normal(0, 200, (height, width))
    return np.clip(image, 0, 65535).astype(np.uint16)


def write_savu_recon(
    path: str,
    height: int = 32,
    count: int = 24,
    width: int = 40,
    seed: int = 0,
    chunks: tuple[int, int, int] | None = (8, 8, 8),
    compression: str | None = None,
) -> str:
    """A Savu-like NeXus file: ``/entry/final_result_tomo/data`` float32 (height, count, width).

    The @default chain leads to it, as in Savu's processed files. Returns the dataset path.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    chunks = tuple(min(c, s) for c, s in zip(chunks, (height, count, width))) if chunks else None
    with h5py.File(path, "w") as file:
        file.attrs["default"] = "entry"
        entry = file.create_group("entry")
        entry.attrs.update({"NX_class": "NXentry", "default": "final_result_tomo"})
        group = entry.create_group("final_result_tomo")
        group.attrs.update({"NX_class": "NXdata", "signal": "data"})
        data = group.create_dataset("data", (height, count, width), np.float32, chunks=chunks, compression=compression)
        for index in range(count):
            data[:, index, :] = recon_slice(index, height, width, seed)
    return "/entry/final_result_tomo/data"


def raw_keys(projections: int, flats: int, darks: int) -> np.ndarray:
    """GDA's order: darks, flats, projections, flats, darks (halves before and after)."""
    before = [IMAGE_KEY["dark"]] * (darks // 2) + [IMAGE_KEY["flat"]] * (flats // 2)
    after = [IMAGE_KEY["flat"]] * (flats - flats // 2) + [IMAGE_KEY["dark"]] * (darks - darks // 2)
    return np.array(before + [IMAGE_KEY["projection"]] * projections + after, np.int32)


def write_gda_raw(
    path: str, projections: int = 20, flats: int = 4, darks: int = 4, height: int = 24, width: int = 32, seed: int = 0
) -> str:
    """A GDA-like NXtomo raw scan: uint16 (images, height, width) with ``image_key``.

    The detector data sits at ``/entry1/instrument/pco1_hw_hdf/data`` and is linked from
    ``/entry1/tomo_entry/data/data``, as in i13's files. Returns the detector dataset path.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    keys = raw_keys(projections, flats, darks)
    with h5py.File(path, "w") as file:
        entry = file.create_group("entry1")
        entry.attrs["NX_class"] = "NXentry"
        detector = entry.create_group("instrument/pco1_hw_hdf")
        data = detector.create_dataset("data", (keys.size, height, width), np.uint16, chunks=(1, height, width))
        for index, key in enumerate(keys):
            image = projection(index, height, width, seed)
            data[index] = image // 20 if key == IMAGE_KEY["dark"] else image if key == 0 else np.maximum(image, 40000)
        tomo = entry.create_group("tomo_entry")
        tomo.attrs.update({"NX_class": "NXentry", "definition": "NXtomo"})
        tomo.create_dataset("instrument/detector/image_key", data=keys)
        tomo.create_group("data").attrs.update({"NX_class": "NXdata", "signal": "data"})
        tomo["data/data"] = h5py.SoftLink("/entry1/instrument/pco1_hw_hdf/data")
    return "/entry1/instrument/pco1_hw_hdf/data"


def write_tiff_dir(
    directory: str,
    pattern: str = "recon_%05d.tif",
    count: int = 12,
    height: int = 24,
    width: int = 32,
    dtype: str = "float32",
    seed: int = 0,
    start: int = 0,
) -> list[str]:
    """A directory of single-page TIFFs (float32 slices, or uint16 raw images)."""
    os.makedirs(directory, exist_ok=True)
    paths = []
    for index in range(start, start + count):
        image = (
            recon_slice(index, height, width, seed) if dtype == "float32" else projection(index, height, width, seed)
        )
        path = os.path.join(directory, pattern % index)
        tifffile.imwrite(path, image.astype(dtype), metadata=None)
        paths.append(path)
    return paths


def write_astra_rank4(path: str, height: int = 32, width: int = 32, count: int = 130, seed: int = 0) -> str:
    """A rank-4 reconstruction (height, 1, width, index) at ``2-AstraReconGpu-tomo/data``, as in
    the beamline page's second example."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with h5py.File(path, "w") as file:
        data = file.create_dataset(
            "2-AstraReconGpu-tomo/data", (height, 1, width, count), np.float32, chunks=(height, 1, width, 1)
        )
        for index in range(count):
            data[:, 0, :, index] = recon_slice(index, height, width, seed)
    return "2-AstraReconGpu-tomo/data"


def write_seed_examples(directory: str) -> None:
    """The files the README's examples (the beamline page's commands) run on."""
    write_savu_recon(os.path.join(directory, "13429_processed.nxs"), height=64, count=60, width=64, chunks=(16, 16, 16))
    write_astra_rank4(os.path.join(directory, "tomo_p2_astra_recon_gpu.h5"))
    write_gda_raw(os.path.join(directory, "23912.nxs"), projections=2159, flats=10, darks=10, height=16, width=24)
    write_tiff_dir(os.path.join(directory, "87637"), "recon_129200_%05d.tif", count=2159, height=16, width=24)


def main(argv: list[str] | None = None) -> None:
    """``python -m tomotiff.synthetic [DIR]``: the README's example files."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m tomotiff.synthetic",
        description="Write the small example files the README's commands run on (the layouts of the beamline page).",
    )
    parser.add_argument(
        "directory", nargs="?", default="demo", metavar="DIR", help="where to write them (default: %(default)s)"
    )
    target = parser.parse_args(argv).directory
    write_seed_examples(target)
    print(f"wrote the example files to {target}/")


if __name__ == "__main__":
    main()
