"""What a pixel measures: its size in the sample (spatial calibration) and, for quantised output,
the value each grey level stands for (density calibration), as ImageJ/Fiji and OME readers take them.

The pixel size comes from ``--pixel-size`` or from the file: NXdetector's ``x_pixel_size`` and
``y_pixel_size`` (with ``units``), or Data Exchange's ``pixel_size``; a ``magnification`` beside
them turns the detector's pixel into the sample plane's. Writers record unknown sizes as NaN,
zero or ``units="undefined"`` (GDA): those mean unknown, never a calibration.
"""

import math
import re
from dataclasses import dataclass

import h5py
import numpy as np

from tomotiff import hdf5
from tomotiff.errors import TomotiffError

UNITS_IN_UM = {
    "m": 1e6,
    "mm": 1e3,
    "cm": 1e4,
    "um": 1.0,
    "µm": 1.0,
    "micron": 1.0,
    "microns": 1.0,
    "nm": 1e-3,
    "micrometer": 1.0,
    "micrometre": 1.0,
    "millimeter": 1e3,
    "millimetre": 1e3,
    "meter": 1e6,
    "metre": 1e6,
}
_SIZE = re.compile(r"\s*([0-9.]+(?:[eE][-+]?\d+)?)\s*([a-zA-Zµ]*)\s*")
SIZE_NAMES = ("x_pixel_size", "y_pixel_size", "pixel_size")


@dataclass(frozen=True)
class PixelSize:
    """The side of a pixel in micrometres (square pixels), and where that number came from."""

    um: float
    origin: str

    def binned(self, factor: int) -> "PixelSize":
        return self if factor == 1 else PixelSize(self.um * factor, f"{self.origin}, x{factor} (--bin {factor})")

    def describe(self) -> dict:
        return {"pixel_size_um": self.um, "pixel_size_from": self.origin}


def parse_pixel_size(text: str) -> PixelSize:
    """``--pixel-size 1.625um``, ``0.65e-6m``; a plain number is in micrometres."""
    match = _SIZE.fullmatch(text)
    unit = (match.group(2) or "um").lower() if match else ""
    if match is None or unit not in UNITS_IN_UM:
        raise TomotiffError(
            f"--pixel-size {text!r}: give a number and a unit, e.g. 1.625um, 0.65e-6m or 6.5 "
            f"(micrometres); units: {', '.join(sorted(set(UNITS_IN_UM) - {'µm'}))}"
        )
    size = float(match.group(1)) * UNITS_IN_UM[unit]
    if not size > 0 or not math.isfinite(size):
        raise TomotiffError(f"--pixel-size {text!r} must be a positive size")
    return PixelSize(size, f"--pixel-size {text}")


def pixel_size_in_file(file: h5py.File, dataset_path: str) -> tuple[PixelSize | None, str | None]:
    """The pixel size the file records for the data at ``dataset_path`` (the size datasets nearest
    to it), or None and why not (None, None when the file records none at all)."""
    found = [
        (name, obj)
        for name, obj in hdf5.walk(file)
        if isinstance(obj, h5py.Dataset) and name.rsplit("/", 1)[-1] in SIZE_NAMES
    ]
    if not found:
        return None, None
    name, dataset = max(
        found, key=lambda item: (_shared_depth(item[0], dataset_path), item[0].endswith("x_pixel_size"))
    )
    size_um, why = _in_um(dataset)
    if size_um is None:
        return None, f"/{name} in {file.filename} {why}: the images are not calibrated (give --pixel-size)"
    origin = f"/{name}"
    magnification = _magnification(file, name)
    if magnification is not None:
        size_um, origin = size_um / magnification[1], f"{origin} / {magnification[0]} (the sample plane)"
    return PixelSize(size_um, origin), None


def _shared_depth(a: str, b: str) -> int:
    return len([1 for x, y in zip(a.strip("/").split("/"), b.strip("/").split("/")) if x == y])


def _in_um(dataset: h5py.Dataset) -> tuple[float | None, str]:
    try:
        value = float(np.asarray(dataset[()], np.float64).reshape(-1)[0])
    except (OSError, ValueError, TypeError, IndexError):
        return None, "cannot be read as a number"
    unit = hdf5.text_attribute(dataset, "units") or "m"  # NeXus: NX_LENGTH, SI by default
    if not (math.isfinite(value) and value > 0):
        return None, f"is {value!r}"
    if unit.lower() not in UNITS_IN_UM:
        return None, f"has units {unit!r}"
    return value * UNITS_IN_UM[unit.lower()], ""


def _magnification(file: h5py.File, size_name: str) -> tuple[str, float] | None:
    """A positive ``magnification`` in the size's group or one of its parents."""
    parts = size_name.split("/")[:-1]
    while parts:
        candidate = "/".join([*parts, "magnification"])
        try:
            obj = hdf5.follow(file, candidate)
            value = float(np.asarray(obj[()], np.float64).reshape(-1)[0])
        except (hdf5.BrokenPath, OSError, ValueError, TypeError, IndexError):
            parts.pop()
            continue
        if math.isfinite(value) and value > 0:
            return f"/{candidate}", value
        parts.pop()
    return None


@dataclass(frozen=True)
class ValueCalibration:
    """ImageJ's straight-line calibration (``cf=0``): value = c0 + c1 * grey level, so that what
    ImageJ measures equals ``tomotiff.dequantise(q, lo, hi, bits)``."""

    c0: float
    c1: float
    unit: str | None

    @classmethod
    def of(cls, lo: float, hi: float, bits: int, unit: str | None) -> "ValueCalibration":
        return cls(float(lo), (float(hi) - float(lo)) / (2**bits - 1), unit)
