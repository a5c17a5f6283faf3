"""How much of each quantised image its window clipped, and which images stand out (issue 16).

The quantise stage tallies, per image, the pixels it wrote as 0 (NaN pixels among them, as the
formula writes NaN as 0), those it wrote as the top grey level ``2**bits - 1``, and the NaN
pixels (:func:`tomotiff.quantisation.quantise`'s ``counts``), in the pass that writes them.
Here they become each manifest entry's ``clipped`` fractions, a per-output summary
(min/median/max over the images, in the manifest's header and the workflow's stats.json) and a
drift warning: images whose clipped fraction is far from the output's median, as when the
brightness of a scan changes part way (a beam dump, a refill) under one window.
"""

import numpy as np

from tomotiff.keys import KEY_NAMES

DRIFT_FRACTION = 0.10  # of an image's pixels, beyond the median's, at 0 or at the top: drift


def entry(counts: np.ndarray, pixels: int) -> dict:
    """An image's ``clipped`` record from its tallies (at 0, at the top, NaN) and pixel count."""
    at_0, at_top, nan = (int(n) for n in counts)
    share = (lambda n: n / pixels) if pixels else (lambda n: 0.0)
    return {"clipped": {"at_0": share(at_0), "at_top": share(at_top), "nan": nan}}


def summary(entries: list[dict]) -> dict | None:
    """min/median/max over the images of the fractions at 0 and at the top, the NaN pixels, and
    the images that drift (:func:`drifting`); None for images without tallies (not quantised).

    Of a raw scan's output only the projections count, the images the window is chosen for:
    darks sit at 0 and flats near the top by nature, and would pass for drift."""
    projections = [item for item in entries if item.get("image_key") == KEY_NAMES["projections"]]
    counted = projections or entries
    clipped = [(item["index"], item["clipped"]) for item in counted if "clipped" in item]
    if not clipped:
        return None
    found: dict = {"images": len(clipped), "of": "projections" if projections else "all images"}
    for side in ("at_0", "at_top"):
        values = np.array([record[side] for _, record in clipped])
        found[side] = {"min": float(values.min()), "median": float(np.median(values)), "max": float(values.max())}
    nan = [record["nan"] for _, record in clipped]
    found["nan"] = {"pixels": int(sum(nan)), "images": sum(1 for n in nan if n)}
    found["drift"] = {"threshold": DRIFT_FRACTION, "images": drifting(clipped, found)}
    return found


def drifting(clipped: list[tuple[int, dict]], found: dict) -> list[int]:
    """The images whose fraction at 0 or at the top lies more than ``DRIFT_FRACTION`` from the
    median of all images (an absolute margin: a 10-point change of clipped area is plain to see, and
    reconstructions whose corners sit at 0 keep a steady large fraction that is no drift; a rotating
    sample's projections vary by a few points)."""
    medians = {side: found[side]["median"] for side in ("at_0", "at_top")}
    return [
        index
        for index, record in clipped
        if any(abs(record[side] - median) > DRIFT_FRACTION for side, median in medians.items())
    ]


def described(found: dict, bits: int) -> str:
    """The summary in one line, printed after each quantised output is written."""
    sides = ", ".join(
        f"at {level} median {found[side]['median']:.2%} (max {found[side]['max']:.2%})"
        for side, level in (("at_0", 0), ("at_top", 2**bits - 1))
    )
    nan = found["nan"]
    nans = f"; {nan['pixels']} NaN pixels (written as 0) in {nan['images']} images" if nan["pixels"] else ""
    return f"clipped pixels per image: {sides}{nans}"


def drift_warning(found: dict | None, what: str, bits: int) -> str | None:
    """One line naming the drifting images of ``what`` (e.g. "u8"), or None when none drift."""
    if not found or not found["drift"]["images"]:
        return None
    images = found["drift"]["images"]
    return (
        f"warning: {what}: {len(images)} of {found['images']} {_noun(found)} ({spans(images)}) have "
        f"{DRIFT_FRACTION:.0%} more or fewer of their pixels at 0 or at {2**bits - 1} than the median one (at 0: "
        f"{found['at_0']['median']:.2%}, at {2**bits - 1}: {found['at_top']['median']:.2%}): the brightness "
        "changes across the scan under one window; look at them (tomotiff report) before trusting the window"
    )


def announce(manifest: dict, what: str, say, warn) -> None:
    """After a manifest is written: its clipping summary as one line, and the drift warning if any."""
    found = manifest.get("clipping")
    if found:
        say(f"{what}: {described(found, manifest['bits'])}")
        drift = drift_warning(found, what, manifest["bits"])
        if drift:
            warn(drift)


def _noun(found: dict) -> str:
    return "projections" if found["of"] == "projections" else "images"


def spans(indices: list[int], shown: int = 8) -> str:
    """``[1, 2, 3, 7, 9, 10]`` as ``"1..3, 7, 9..10"``: the first ``shown`` runs, then how many more."""
    runs: list[list[int]] = []
    for index in indices:
        if runs and index == runs[-1][-1] + 1:
            runs[-1].append(index)
        else:
            runs.append([index])
    named = [str(run[0]) if len(run) == 1 else f"{run[0]}..{run[-1]}" for run in runs[:shown]]
    rest = sum(len(run) for run in runs[shown:])
    return ", ".join(named) + (f" and {rest} more" if rest else "")
