"""Statistics of a reference image: what a user looks at to choose (or check) the window.

The workflow writes them to ``results/{scan}/stats.json``; percentiles use the same method
as :func:`tomotiff.window.percentile_window` (numpy's linear method, float64, finite pixels
only, inside the scan's mask if it has one), so the ``P`` and ``100 - P`` percentiles listed
here are exactly the lo/hi a reference window with ``-p P`` picks.
"""

import numpy as np

from tomotiff import __version__
from tomotiff.errors import TomotiffError
from tomotiff.mask import Mask
from tomotiff.source import Source
from tomotiff.window import Window, finite_pixels

PERCENTILES = (0.0, 0.1, 1.0, 50.0, 99.0, 99.9, 100.0)
HISTOGRAM_BINS = 256


def percentile_key(percent: float) -> str:
    """The JSON key of a percentile: ``0``, ``0.1``, ``99.9`` (``%g``)."""
    return f"{float(percent):g}"


def image_stats(image: np.ndarray, percentiles=PERCENTILES, bins: int = HISTOGRAM_BINS) -> dict:
    """min, max, mean, std, percentiles and a histogram of the finite pixels of ``image``.

    NaN and +-Inf are counted (``nonfinite``) but take no part in the statistics; an image
    without a finite pixel gives ``None`` for every statistic and an empty histogram.
    The histogram has ``bins`` equal bins from min to max (numpy's edges, the last bin closed).
    """
    if bins < 1:
        raise TomotiffError(f"the histogram needs at least one bin, got {bins}")
    image = np.asarray(image)
    values = finite_pixels(image).astype(np.float64, copy=False)
    result = {"pixels": int(image.size), "finite": int(values.size), "nonfinite": int(image.size - values.size)}
    if values.size == 0:
        return {
            **result,
            "min": None,
            "max": None,
            "mean": None,
            "std": None,
            "percentiles": {percentile_key(p): None for p in percentiles},
            "histogram": {"bins": bins, "edges": [], "counts": []},
        }
    low, high = float(values.min()), float(values.max())
    counts, edges = np.histogram(values, bins=bins, range=(low, high))
    points = np.percentile(values, list(percentiles))
    return {
        **result,
        "min": low,
        "max": high,
        "mean": float(values.mean()),
        "std": float(values.std()),
        "percentiles": {percentile_key(p): float(v) for p, v in zip(percentiles, points)},
        "histogram": {"bins": bins, "edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def scan_stats(
    source: Source,
    reference: int,
    windows: dict[str, Window] | None = None,
    description: dict | None = None,
    percentiles=PERCENTILES,
    bins: int = HISTOGRAM_BINS,
    mask: Mask | None = None,
) -> dict:
    """The statistics of image ``reference`` of ``source`` (of the pixels ``mask`` keeps, as the
    window's percentiles see them), with the source's ``description`` (default: its own; a
    plan's adds the image_key dataset), the selected range and the window chosen for each output
    (``windows``, e.g. ``{"u8": ...}``)."""
    image = source.read_image(reference)
    description = dict(source.describe() if description is None else description)
    count = source.stop - source.begin
    # An HDF5 dataset has its own shape; a TIFF directory is a stack of its files begin..stop-1 along axis 0.
    shape = description.pop("dataset_shape", None) or [count, *source.image_shape]
    return {
        "tomotiff_version": __version__,
        "dataset": None,
        "axis": 0,
        **description,
        "shape": [int(n) for n in shape],
        "dtype": str(source.dtype),
        "image_shape": [int(n) for n in source.image_shape],
        "range": {"begin": source.begin, "stop": source.stop, "count": count},
        "reference": reference,
        "mask": mask.as_dict() if mask else None,
        **image_stats(mask.select(image[None]) if mask else image, percentiles, bins),
        "windows": {name: window.as_dict() for name, window in (windows or {}).items()},
    }
