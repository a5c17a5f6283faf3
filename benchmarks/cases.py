"""The benchmark's cases: the layouts tomotiff meets in practice, at scale 1.

Standard library only: bench.py imports this, and the process that measures must stay small
(a child's peak RSS can read no lower than its parent's; see measure.py). The volumes are
written by volumes.py, in a process of their own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

TIFF_PATTERN = "recon_%05d.tif"
ITEMSIZE = {"uint8": 1, "uint16": 2, "float32": 4}
MIN_IMAGES = 4  # so that two workers still have work at tiny scales
RECON_WINDOW = (-0.0005, 0.0015)
RAW_WINDOW = (100.0, 60000.0)


@dataclasses.dataclass(frozen=True)
class CaseSpec:
    """A benchmark case at scale 1, and which extra rows it has."""

    name: str
    description: str
    layout: str  # which writer of volumes.py makes it: savu, stack, gda, tiff or big
    images: int
    image_shape: tuple[int, int]
    dtype: str
    dataset: str | None  # None: a directory of single-page TIFFs
    axis: int
    chunks: tuple[int, int, int] | None
    window: tuple[float, float]
    compression: str | None = None  # the HDF5 filters of its chunks (volumes.filters): gzip, bslz4 or blosc
    one_worker: bool = False  # also time -j 1, to show what the second worker buys
    startup: bool = False  # also time -j 1 on the first image only: the fixed start-up of every run
    float32_out: bool = False  # also time float32 output (no conversion: pure I/O path)
    peer: bool = False  # also time nabu-cast, which only reads images along axis 0
    scaling: bool = False  # rerun tomotiff on twice the images to check memory stays flat


CASES = {
    spec.name: spec
    for spec in (
        CaseSpec(
            name="A",
            description="Savu-like float32 recon (H, index, W), chunks (32, 32, 32), images on axis 1",
            layout="savu",
            images=256,
            image_shape=(1024, 1024),
            dtype="float32",
            dataset="/entry/final_result_tomo/data",
            axis=1,
            chunks=(32, 32, 32),
            window=RECON_WINDOW,
            one_worker=True,
            scaling=True,
        ),
        CaseSpec(
            name="B",
            description="float32 recon (index, H, W), contiguous, images on axis 0",
            layout="stack",
            images=128,
            image_shape=(2048, 2048),
            dtype="float32",
            dataset="/entry/final_result_tomo/data",
            axis=0,
            chunks=None,
            window=RECON_WINDOW,
            one_worker=True,
            startup=True,
            float32_out=True,
            peer=True,
        ),
        CaseSpec(
            name="C",
            description="uint16 raw projections (index, H, W), one chunk per image",
            layout="gda",
            images=256,
            image_shape=(2048, 2048),
            dtype="uint16",
            dataset="/entry1/instrument/pco1_hw_hdf/data",
            axis=0,
            chunks=(1, 2048, 2048),
            window=RAW_WINDOW,
            peer=True,
            scaling=True,
        ),
        *(
            CaseSpec(
                name=f"C-{compression}",
                description=f"uint16 raw projections (index, H, W), one chunk per image, {what}",
                layout="gda",
                images=128,  # 1.07 GB of pixels: writing compressed chunks is the slow part of the run
                image_shape=(2048, 2048),
                dtype="uint16",
                dataset="/entry1/instrument/pco1_hw_hdf/data",
                axis=0,
                chunks=(1, 2048, 2048),
                window=RAW_WINDOW,
                compression=compression,
                one_worker=True,
                scaling=compression == "gzip",  # BLISS's default filter: memory must stay flat on it
            )
            for compression, what in (
                ("gzip", "gzip level 1 + byte shuffle"),
                ("bslz4", "bitshuffle-LZ4"),
                ("blosc", "Blosc zstd + bitshuffle"),
            )
        ),
        CaseSpec(
            name="D",
            description="directory of float32 2048x2048 single-page TIFFs",
            layout="tiff",
            images=128,
            image_shape=(2048, 2048),
            dtype="float32",
            dataset=None,
            axis=0,
            chunks=None,
            window=RECON_WINDOW,
        ),
    )
}

BIG = CaseSpec(  # --big: larger than the machine's memory; its image count comes from the size asked for
    name="BIG",
    description="Savu-like float32 recon (H, index, W) larger than RAM, chunks (32, 32, 32), images on axis 1",
    layout="big",
    images=0,
    image_shape=(1024, 1024),
    dtype="float32",
    dataset="/entry/final_result_tomo/data",
    axis=1,
    chunks=(32, 32, 32),
    window=RECON_WINDOW,
)
SPECS = {**CASES, BIG.name: BIG}  # what volumes.py can write


@dataclasses.dataclass(frozen=True)
class Volume:
    """A case's input on disk (an HDF5 file or a TIFF directory), known before it is written."""

    spec: CaseSpec
    path: Path
    images: int

    def nbytes(self, dtype: str) -> int:
        """Bytes of all images in `dtype`: input size, or the size of an output."""
        height, width = self.spec.image_shape
        return self.images * height * width * ITEMSIZE[dtype]

    @property
    def input_bytes(self) -> int:
        return self.nbytes(self.spec.dtype)

    def files(self) -> list[Path]:
        """The input files, in the order a sequential reader would take them."""
        return sorted(self.path.iterdir()) if self.spec.dataset is None else [self.path]


def volume_for(spec: CaseSpec, images: int, root: Path) -> Volume:
    """Where the case's input goes, named by case and image count (A-2x gets its own file)."""
    suffix = "" if spec.dataset is None else ".h5"
    return Volume(spec, root / f"{spec.name}_{images}{suffix}", images)


def case_named(name: str) -> CaseSpec | None:
    """--cases takes names in any case (c-gzip for C-gzip)."""
    return next((spec for key, spec in CASES.items() if key.upper() == name.strip().upper()), None)


def big_images(gigabytes: float) -> int:
    """Images of BIG for a volume of about `gigabytes` (10^9 bytes): whole 32-image chunk layers,
    which volumes.py writes a layer at a time."""
    height, width = BIG.image_shape
    depth = BIG.chunks[1]
    layer = depth * height * width * ITEMSIZE[BIG.dtype]
    return depth * max(1, round(gigabytes * 1e9 / layer))


def big_bytes(images: int) -> int:
    height, width = BIG.image_shape
    return images * height * width * ITEMSIZE[BIG.dtype]


def big_disk_needed(images: int) -> int:
    """BIG's input and its uint8 output, both on disk at once."""
    return big_bytes(images) * (ITEMSIZE[BIG.dtype] + 1) // ITEMSIZE[BIG.dtype]


def scaled_images(spec: CaseSpec, scale: float) -> int:
    """--scale changes only the image count: per-image costs stay those of real image sizes."""
    return max(MIN_IMAGES, round(spec.images * scale))


def disk_needed(specs: list[CaseSpec], scale: float) -> int:
    """Peak disk use: one case at a time, its input plus its largest output (doubled volumes included)."""
    peak = 0
    for spec in specs:
        height, width = spec.image_shape
        factor = 2 if spec.scaling else 1
        per_image = ITEMSIZE[spec.dtype] + (4 if spec.float32_out else 1)
        peak = max(peak, factor * scaled_images(spec, scale) * height * width * per_image)
    return peak
