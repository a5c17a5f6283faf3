"""`tomotiff report` (issue 16, "See the window before trusting it"): one self-contained HTML page
drawn from the files written only. The page is parsed as a browser would (html.parser): a section
per scan and output, the window and its mask exactly as the manifest records them, the manifest's
clipping figures and drifting images, stats.json, verify's result, every image a PNG data URI and
nothing fetched. It is opened in headless Chromium (the DOM holds every scan, the screenshot is not
blank), made for 200 small scans within a size bound, and built by the workflow into Snakemake's
own report.
"""

import base64
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path

import h5py
import numpy as np
import pytest
import tifffile

from conftest import run_cli
from tomotiff import engine, report, synthetic
from tomotiff.files import file_checksum
from tomotiff.manifest import MANIFEST_NAME, write_manifest
from tomotiff.mask import Mask
from tomotiff.plan import SourceRequest
from tomotiff.stats import image_stats, scan_stats
from tomotiff.window import Window

REPO = Path(__file__).resolve().parents[1]
SAVU = "/entry/final_result_tomo/data"
GDA = "/entry1/instrument/pco1_hw_hdf/data"
DRIFT_DATASET = "/entry/data"
ODD_NAME = 'cmd <b>&"odd"'  # a directory name that must reach the page as text, never as markup
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MANY = 200
MANY_BYTES_PER_SCAN = 40_000  # measured: about 16 kB a scan of eight 32 x 32 images
DRIFTING = [6, 7, 8]  # R3's images made brighter: its window clips them far more than the others
TOC_COLUMN = {name: n for n, name in enumerate(report.TOC_HEAD[1:])}  # cells from the output's on


# --- reading the page as a browser does ------------------------------------------------------


class Page(HTMLParser):
    """What a report shows: its scans (``<details>``) with their stats.json tables, their output
    sections with the text of the fields a test reads (the window's cells, the clipping table's
    most clipped cells, the drift line, verify's result), the table of contents' rows, the images'
    sources, and anything a browser would fetch."""

    FIELDS = ("lo", "hi", "how", "mask", "max", "drift", "verify")  # first CSS class of a field read

    def __init__(self, text: str):
        super().__init__()
        self.scans: list[str] = []
        self.stats: dict[str, dict[str, str]] = {}  # scan: stats.json's rows, and its summary line
        self.sections: list[dict] = []
        self.images: list[str] = []
        self.fetched: list[str] = []  # scripts, stylesheets, frames: a self-contained page has none
        self.toc: list[dict] = []  # one row per output: the section it links to, its cells' text from the output's
        self._field: tuple[dict, str, str] | None = None  # where the text goes, its key, the tag holding it
        self._in_toc = False
        self._stats_row: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attrs = dict(attrs)
        css = attrs.get("class") or ""
        if tag == "details" and "scan" in css.split():
            self.scans.append(attrs["data-scan"])
        elif tag == "details" and css == "stats":
            self.stats[self.scans[-1]] = {}
        elif tag == "section" and css == "output":
            self.sections.append({"scan": attrs["data-scan"], "output": attrs["data-output"], "id": attrs["id"]})
            self.sections[-1].update({name: "" for name in self.FIELDS} | {"figures": []})
        elif tag == "img":
            self.images.append(attrs["src"])
            self.sections[-1]["figures"].append(attrs["class"])
        elif tag in ("script", "link", "iframe", "object", "embed", "video", "audio") or "src" in attrs:
            self.fetched.append(tag)
        elif tag == "table" and css == "toc":
            self._in_toc = True
        self._read_toc(tag, attrs)
        self._read_stats(tag)
        if self.sections and css.split()[:1] and css.split()[0] in self.FIELDS:
            key = css if css.startswith("max") else css.split()[0]
            self.sections[-1].setdefault(key, "")
            self._field = (self.sections[-1], key, tag)

    def _read_toc(self, tag: str, attrs: dict) -> None:
        if not self._in_toc:
            return
        if tag == "tr":
            self.toc.append({"href": None, "cells": []})
        elif tag == "td":
            self.toc[-1]["cells"].append("")
        elif tag == "a" and "-" in attrs["href"]:  # the output's link: its cells start here
            self.toc[-1].update(href=attrs["href"][1:], cells=self.toc[-1]["cells"][-1:])

    def _read_stats(self, tag: str) -> None:
        if self.scans and self.scans[-1] in self.stats and not self.sections_of(self.scans[-1]):
            if tag == "summary":
                self._field = (self.stats[self.scans[-1]], "summary", tag)
            elif tag == "tr":
                self._stats_row = []
            elif tag in ("th", "td") and self._stats_row is not None:
                self._stats_row.append("")

    def handle_endtag(self, tag: str) -> None:
        if self._field and tag == self._field[2]:
            self._field = None
        if self._in_toc and tag == "tr" and not self.toc[-1]["cells"]:
            self.toc.pop()  # the header row: no td
        if tag == "table":
            self._in_toc = False
        if tag == "tr" and self._stats_row is not None:
            key, value = self._stats_row
            self.stats[self.scans[-1]][key] = value
            self._stats_row = None

    def handle_data(self, data: str) -> None:
        if self._field:
            target, name, _ = self._field
            target[name] = target.get(name, "") + data
        if self._in_toc and self.toc and self.toc[-1]["cells"]:
            self.toc[-1]["cells"][-1] += data
        if self._stats_row:
            self._stats_row[-1] += data

    def sections_of(self, scan: str) -> list[dict]:
        return [s for s in self.sections if s["scan"] == scan]

    def section(self, scan: str, output: str) -> dict:
        (found,) = [s for s in self.sections_of(scan) if s["output"] == output]
        return found

    def toc_cell(self, scan: str, output: str, column: str) -> str:
        """The table of contents' cell ``column`` (a name of report.TOC_HEAD) of an output."""
        (row,) = [row for row in self.toc if row["href"] == self.section(scan, output)["id"]]
        return row["cells"][TOC_COLUMN[column]]


def manifest(directory: Path) -> dict:
    return json.loads((directory / MANIFEST_NAME).read_text())


# --- outputs to report on --------------------------------------------------------------------


def write_stats(scan_dir: Path, source: SourceRequest, reference: int, mask: Mask | None = None) -> None:
    """results/SCAN/stats.json as the workflow's stats job writes it, with each depth's window and
    each quantised output's clipping summary."""
    depths = [depth for depth in ("u8", "u16") if (scan_dir / depth).is_dir()]
    windows = {depth: Window(**manifest(scan_dir / depth)["window"]) for depth in depths}
    with source.open() as opened:
        stats = scan_stats(opened, reference, windows, mask=mask)
    clipped = {depth: manifest(scan_dir / depth)["clipping"] for depth in depths}
    (scan_dir / "stats.json").write_text(json.dumps({"scan": scan_dir.name, **stats, "clipping": clipped}))


def write_drifting(path: Path) -> Path:
    """A reconstruction of 20 slices 24 x 32, zeros outside the field of view, whose slices
    ``DRIFTING`` are 1.5 times brighter: a window fitted to the others clips most of them at the top."""
    volume = np.random.default_rng(5).normal(1.0, 0.1, (20, 24, 32)).astype(np.float32)
    volume[DRIFTING] *= 1.5
    rows, columns = np.meshgrid(np.arange(24) - 11.5, np.arange(32) - 15.5, indexing="ij")
    volume[:, np.hypot(rows, columns) > 12] = 0.0
    with h5py.File(path, "w") as file:
        file.create_dataset(DRIFT_DATASET, data=volume)
    return path


@pytest.fixture(scope="module")
def outputs(tmp_path_factory) -> dict[str, Path]:
    """A workflow-like results/ (a reconstruction at u8 (-p 0.1), u16 (-p 1) and f32 with its
    stats.json; a raw scan split by kind with an explicit window, no stats.json; a drifting
    reconstruction at u8 (explicit window) and u16 (-p 1 inside the field of view, leaving out 0)
    with a masked stats.json), a command's directory, a zstd-compressed u16 stack of TIFF slices,
    under an awkward name, and the raw scan in one directory (darks, flats and projections)."""
    root = tmp_path_factory.mktemp("report")
    recon, raw, tiffs = root / "data/recon.nxs", root / "data/raw.nxs", root / "data/tiffs"
    synthetic.write_savu_recon(str(recon), height=32, count=24, width=40)
    synthetic.write_gda_raw(str(raw), projections=20, flats=4, darks=4, height=24, width=32)
    synthetic.write_tiff_dir(str(tiffs), count=12)
    drifting = write_drifting(root / "data/drifting.h5")
    results = root / "results"
    common = ("-d", SAVU, "-i", "1", "-q", recon)
    masked = ("--mask", "circle", "--mask-value", "0")
    for args in (
        ("nxs2tiffux", "-u", "8", "-r", "12", "-p", "0.1", *common, results / "R1/u8"),
        ("nxs2tiffux", "-u", "16", "-r", "12", "-p", "1", *common, results / "R1/u16"),
        ("nxs2tiff", "--fp", *common, results / "R1/f32"),
        ("nxs2tiffux", "-d", GDA, "--lo", "0", "--hi", "40000", "--split-keys", "-q", raw, results / "R2/u8"),
        ("nxs2tiffux", "-d", DRIFT_DATASET, "--lo", "0.7", "--hi", "1.3", "-q", drifting, results / "R3/u8"),
        ("nxs2tiffux", "-u", "16", "-d", DRIFT_DATASET, "-p", "1", *masked, "-q", drifting, results / "R3/u16"),
        ("nxs2tiffux", "-d", GDA, "-p", "1", "-q", raw, root / "raw"),
        (
            "tiff2tiffux",
            "-i",
            "recon_%05d.tif",
            "-u",
            "16",
            "-p",
            "0.5",
            "--stack",
            "--compression",
            "zstd",
            "-q",
            tiffs,
            root / ODD_NAME,
        ),
    ):
        done = run_cli(*args)
        assert done.returncode == 0, done.stderr
    write_stats(results / "R1", SourceRequest(str(recon), "hdf5", SAVU, 1), 12)
    write_stats(results / "R3", SourceRequest(str(drifting), "hdf5", DRIFT_DATASET), 10, Mask(True, (0.0,)))
    return {"root": root, "results": results, "command": root / ODD_NAME, "raw": root / "raw"}


@pytest.fixture(scope="module")
def page(outputs) -> tuple[Path, Page]:
    path = outputs["root"] / "report.html"
    directories = [str(outputs[name]) for name in ("results", "command", "raw")]
    said = report.write_report(directories, str(path))
    assert said.startswith(f"{path}: 5 scan(s), 10 output(s)") and said.endswith("verify OK"), said
    return path, Page(path.read_text())


# --- the page ------------------------------------------------------------------------------


def test_one_section_per_scan_and_output(outputs, page):
    path, shown = page
    odd, raw = str(outputs["command"]), str(outputs["raw"])
    assert shown.scans == ["R1", "R2", "R3", odd, raw]
    assert sorted((s["scan"], s["output"]) for s in shown.sections) == sorted(
        [
            ("R1", "u8"),
            ("R1", "u16"),
            ("R1", "f32"),
            ("R2", "u8/darks"),
            ("R2", "u8/flats"),
            ("R2", "u8/projections"),
            ("R3", "u8"),
            ("R3", "u16"),
            (odd, "u16"),
            (raw, "u8"),
        ]
    )
    for s in shown.sections:
        expected = ["histogram", "clipping", "thumbnails", "slice"]
        assert s["figures"] == [name for name in expected if name != "clipping" or s["output"] != "f32"], s


def test_the_window_printed_is_the_manifests(outputs, page):
    _, shown = page
    for scan, output, directory in quantised(outputs):
        recorded = manifest(directory)
        section = shown.section(scan, output)
        assert float(section["lo"]) == recorded["lo"] and float(section["hi"]) == recorded["hi"], (scan, output)
        assert float(shown.toc_cell(scan, output, "lo")) == recorded["lo"], (scan, output)
    assert shown.section("R1", "u8")["lo"] != shown.section("R1", "u16")["lo"]  # -p 0.1 and -p 1: each its own
    assert shown.section("R1", "f32")["lo"] == ""  # float32 has no window


def test_verify_is_shown_for_every_output(page):
    _, shown = page
    for s in shown.sections:
        assert s["verify"].startswith("verify: all ") and s["verify"].endswith("present and matching manifest.json")
    assert len(shown.toc) == len(shown.sections) and all(row["cells"][-1] == "OK" for row in shown.toc)


def test_self_contained_every_image_an_inline_png(page):
    path, shown = page
    assert shown.fetched == []
    assert shown.images and all(src.startswith("data:image/png;base64,") for src in shown.images)
    for src in shown.images:
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_SIGNATURE)
    text = path.read_text()
    assert "http://" not in text and "https://" not in text


def test_file_contents_are_escaped(outputs, page):
    path, shown = page
    assert ODD_NAME not in path.read_text()  # only its escaped form
    assert str(outputs["command"]) in shown.scans  # and the browser reads the name back


def quantised(outputs) -> list[tuple[str, str, Path]]:
    """(scan, output, directory) of every quantised output of the page."""
    results = outputs["results"]
    return [
        ("R1", "u8", results / "R1/u8"),
        ("R1", "u16", results / "R1/u16"),
        *(("R2", f"u8/{kind}", results / f"R2/u8/{kind}") for kind in ("darks", "flats", "projections")),
        ("R3", "u8", results / "R3/u8"),
        ("R3", "u16", results / "R3/u16"),
        (str(outputs["command"]), "u16", outputs["command"]),
        (str(outputs["raw"]), "u8", outputs["raw"]),
    ]


def drawn(directory: Path, output: str | None = None) -> report.Section:
    """The report's section of output ``output`` (default: the only one) of the scan in ``directory``."""
    (scan,) = report.find_scans(str(directory))
    (chosen,) = [found for found in scan.outputs if output in (None, found.label)]
    return report.section(scan, chosen)


def printed_percent(text: str) -> float:
    """A fraction printed as a percent (``12.3%``, ``0.0456% (image 7)``, ``0% / 100%``: the first)."""
    return float(re.match(r"([0-9.e+-]+)%", text).group(1)) / 100


def assert_printed(text: str, fraction: float) -> None:
    """``text`` is ``fraction`` as a percent of three significant digits."""
    assert math.isclose(printed_percent(text), fraction, rel_tol=5e-3, abs_tol=1e-12), (text, fraction)


def test_the_most_clipped_printed_is_the_manifests_max(outputs, page):
    """In the table of contents and in each section: the largest fractions at 0 and at the top of
    the manifest's summary, and in the section the image that has it."""
    _, shown = page
    for scan, output, directory in quantised(outputs):
        recorded = manifest(directory)
        summary = recorded["clipping"]
        at_0, at_top = shown.toc_cell(scan, output, "most clipped at 0 / top").split(" / ")
        assert_printed(at_0, summary["at_0"]["max"])
        assert_printed(at_top, summary["at_top"]["max"])
        section = shown.section(scan, output)
        counted = [e for e in recorded["images"] if summary["of"] == "all images" or e["image_key"] == 0]
        for side in ("at_0", "at_top"):
            assert_printed(section[f"max {side}"], summary[side]["max"])
            most = max(counted, key=lambda entry: entry["clipped"][side])["index"]
            named = f" (image {most})" if summary[side]["max"] else "%"  # nothing clipped: no image named
            assert section[f"max {side}"].endswith(named), (scan, output, side)
    assert shown.toc_cell("R2", "u8/flats", "most clipped at 0 / top") == "0% / 100%"  # flats >= 40000 = hi
    assert shown.toc_cell("R2", "u8/projections", "most clipped at 0 / top") == "0% / 0%"  # within 0..40000


def test_a_raw_scans_clipping_is_over_its_projections(outputs, page):
    """Written in one directory, a raw scan's darks (at 0) and flats (at the top) are left out of
    the summary and the plot, and the page says so."""
    _, shown = page
    raw = str(outputs["raw"])
    assert shown.toc_cell(raw, "u8", "most clipped at 0 / top").endswith(" (projections)")
    assert manifest(outputs["raw"])["clipping"]["of"] == "projections"
    plot = drawn(outputs["raw"]).figures["clipping"]
    assert "each of the 20 projections (the 8 darks and flats are left out, as in the summary)" in plot.note
    assert "over the 20 projections (the 8 darks and flats left out" in Path(page[0]).read_text()


def spans_listed(text: str) -> list[int]:
    """The images a drift line lists: ``drift: 3 of 20 images (6..8, 15): ...`` as [6, 7, 8, 15]."""
    listed = re.match(r"drift: \d+ of \d+ \w+ \(([^)]*)\):", text).group(1)
    runs = [[int(n) for n in part.split("..")] for part in listed.split(", ")]
    return [index for run in runs for index in range(run[0], run[-1] + 1)]


def test_a_drifting_output_lists_exactly_its_drifting_images(outputs, page):
    """R3's slices 6..8 are brighter: under one window (explicit at u8, from slice 10 at u16) they
    clip far more than the rest, and each section names exactly them, as does the table of contents."""
    _, shown = page
    for output in ("u8", "u16"):
        assert manifest(outputs["results"] / "R3" / output)["clipping"]["drift"]["images"] == DRIFTING
        drift = shown.section("R3", output)["drift"]
        assert spans_listed(drift) == DRIFTING and "look at them before trusting the window" in drift
        assert shown.toc_cell("R3", output, "drift") == "6..8"
        plot = drawn(outputs["results"] / "R3", output).figures["clipping"]
        assert plot.note.endswith("amber: drift, images 6..8")
    for scan, output, _ in quantised(outputs):
        if scan != "R3":
            assert shown.section(scan, output)["drift"].startswith("drift: none"), (scan, output)
            assert shown.toc_cell(scan, output, "drift") == "none"


def test_a_masked_window_says_so(outputs, page):
    """R3 u16's window took its percentiles inside the field of view, leaving out 0: its section
    and the table of contents say so; R3 u8's explicit window and R1's have no mask."""
    _, shown = page
    masked = shown.section("R3", "u16")
    assert masked["mask"] == "inside the field-of-view circle, leaving out 0"
    assert masked["how"] == "from reference image 10, -p 1"  # the mask has its own row, not repeated
    assert shown.toc_cell("R3", "u16", "mask") == "circle, not 0"
    assert shown.toc_cell("R3", "u16", "chosen") == "from reference image 10, -p 1"
    for scan, output in (("R3", "u8"), ("R1", "u8")):
        assert shown.section(scan, output)["mask"] == "none (every pixel)"
        assert shown.toc_cell(scan, output, "mask") == "none"
    assert shown.section("R1", "f32")["mask"] == "" and shown.toc_cell("R1", "f32", "mask") == ""


def test_stats_json_shows_its_mask_and_each_outputs_clipping(outputs, page):
    _, shown = page
    stats = shown.stats["R3"]
    assert stats["summary"] == "stats.json: reference image 10, mask: inside the field-of-view circle, leaving out 0"
    assert stats["mask"] == "inside the field-of-view circle, leaving out 0"
    assert stats["windows.u16"].endswith(
        "(from reference image 10, -p 1, inside the field-of-view circle, leaving out 0)"
    )
    for output in ("u8", "u16"):
        summary = manifest(outputs["results"] / "R3" / output)["clipping"]
        line = stats[f"clipping.{output}"]
        assert line.startswith("clipped pixels per image: at 0 median") and line.endswith("over 20 images; drift: 6..8")
        assert f"(max {summary['at_top']['max']:.2%})" in line
    histogram = drawn(outputs["results"] / "R3", "u8").figures["histogram"].note
    assert histogram.endswith("from stats.json, of the pixels inside the field-of-view circle, leaving out 0")
    assert shown.stats["R1"]["mask"] == "none (every pixel)" and shown.stats["R1"]["clipping.u8"].endswith(
        "drift: none"
    )
    assert set(shown.stats) == {"R1", "R3"}  # R2 and the commands' directories have none


def test_the_clipping_comes_from_the_manifest_not_the_pixels(outputs, tmp_path):
    """A manifest whose figures say otherwise than the pixels is believed (the report reads no pixel
    for clipping); one written before tomotiff counted clipping shows none, and says why."""
    copy = tmp_path / "R1"
    shutil.copytree(outputs["results"] / "R1", copy)
    path = copy / "u8" / MANIFEST_NAME
    recorded = json.loads(path.read_text())
    recorded["clipping"]["at_top"]["max"] = 0.4242
    recorded["images"][5]["clipped"]["at_top"] = 0.4242
    path.write_text(json.dumps(recorded))
    (scan,) = report.find_scans(str(copy))
    shown = Page(report.render([scan], [report.scan_sections(scan)], "doctored"))
    assert shown.toc_cell(str(copy), "u8", "most clipped at 0 / top").endswith("/ 42.4%")
    assert shown.section(str(copy), "u8")["max at_top"] == "42.4% (image 5)"
    for entry in recorded["images"]:
        del entry["clipped"]
    del recorded["clipping"]
    path.write_text(json.dumps(recorded))
    text = report.render([scan], [report.scan_sections(scan)], "older")
    shown = Page(text)
    assert "clipping" not in shown.section(str(copy), "u8")["figures"]
    assert shown.toc_cell(str(copy), "u8", "most clipped at 0 / top") == "not recorded"
    assert "clipping: not recorded in manifest.json" in text


def test_histogram_from_stats_json_or_from_the_tiffs(outputs, page):
    """With stats.json: its histogram (the source's values); without: the reference TIFF mapped back."""
    with_stats = report.section(
        report.find_scans(str(outputs["results"] / "R1"))[0], report.Output("u8", str(outputs["results"] / "R1/u8"))
    )
    assert "stats.json" in with_stats.figures["histogram"].note
    command = report.find_scans(str(outputs["command"]))[0]
    without = report.section(command, command.outputs[0])
    assert "from its TIFF mapped back with lo/hi" in without.figures["histogram"].note


def test_measure_reads_rows_and_thumbnails_and_skips_what_cannot_be_read(tmp_path):
    ramp = np.arange(40, dtype=np.uint8).reshape(4, 10)
    images = [np.zeros((4, 10), np.uint8), np.full((4, 10), 255, np.uint8), ramp]
    entries = []
    for index, image in enumerate(images):
        tifffile.imwrite(tmp_path / f"{index}.tif", image)
        entries.append({"index": index, "file": f"{index}.tif"})
    entries.append({"index": 3, "file": "missing.tif"})
    (tmp_path / "broken.tif").write_bytes(b"II*\x00 not a tiff")
    entries.append({"index": 4, "file": "broken.tif"})
    found = report.measure(str(tmp_path), entries, 2)
    assert found.indices == [0, 1, 2] and found.unreadable == [3, 4]
    assert [row.tolist() for row in found.rows] == [[0] * 10, [255] * 10, list(range(20, 30))]
    assert np.array_equal(found.reference, images[2])
    assert sorted(found.thumbnails) == [0, 2]  # first and middle of the five listed; the last is missing


def test_large_outputs_are_sampled():
    for count in (1, 2, 511, 512, 513, 5000):
        chosen = report.sampled(count)
        assert len(chosen) <= report.MAX_IMAGES and {0, count // 2, count - 1} <= set(chosen)
        assert chosen == sorted(set(chosen))
    found = report.downsample(np.ones((2560, 2000)), report.THUMBNAIL)
    assert max(found.shape) <= report.THUMBNAIL


def test_problems_verify_finds_are_shown(outputs, tmp_path):
    copy = tmp_path / "R1"
    shutil.copytree(outputs["results"] / "R1", copy)
    (copy / "u8/image_00003.tif").unlink()
    (copy / "u8/image_00005.tif").write_bytes((copy / "u8/image_00005.tif").read_bytes()[:-1] + b"\x07")
    said = report.write_report([str(copy)], str(tmp_path / "report.html"))
    assert said.endswith("verify found problems in 1 output(s)")
    shown = Page((tmp_path / "report.html").read_text())
    problems = shown.section(str(copy), "u8")["verify"]
    assert "2 problem(s)" in problems and "missing: image_00003.tif (image 3)" in problems
    assert "checksum mismatch: image_00005.tif (image 5)" in problems
    assert "1 problem" not in shown.section(str(copy), "u16")["verify"]


def test_the_command(outputs, tmp_path):
    done = run_cli("tomotiff", "report", outputs["results"] / "R2", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("report.html: 1 scan(s), 3 output(s)") and (tmp_path / "report.html").is_file()
    done = run_cli("tomotiff", "report", outputs["results"], "-o", tmp_path / "sub/all.html", "-j", "2")
    assert done.returncode == 0 and (tmp_path / "sub/all.html").is_file(), done.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    done = run_cli("tomotiff", "report", empty)
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "no manifest.json" in done.stderr


# --- 200 scans -------------------------------------------------------------------------------


def write_many_scans(root: Path, template: dict, count: int = MANY, images: int = 8, side: int = 32) -> None:
    """``count`` small workflow scans, written directly (TIFFs, manifest.json with each image's
    clipping, stats.json), each with its own explicit window: a report's input without running
    the pipeline 200 times."""
    rng = np.random.default_rng(0)
    header = {key: value for key, value in template.items() if key != "images"}
    for n in range(count):
        scan, volume = f"s{n:03d}", rng.normal(0, 1, (images, side, side))
        lo, hi = -2.0 - n / 100, 2.0
        window = Window(lo, hi, "explicit").as_dict()
        directory = root / scan / "u8"
        directory.mkdir(parents=True)
        entries = []
        for index, image in enumerate(volume):
            name = f"{scan}_{index:05d}.tif"
            quantised = np.rint((np.clip(image, lo, hi) - lo) / (hi - lo) * 255).astype(np.uint8)
            tifffile.imwrite(directory / name, quantised)
            fractions = {"at_0": np.mean(quantised == 0), "at_top": np.mean(quantised == 255), "nan": 0}
            with open(directory / name, "rb") as handle:
                entries.append({"index": index, "file": name, "xxh3_128": file_checksum(handle), "clipped": fractions})
        written = write_manifest(
            str(directory / MANIFEST_NAME),
            {**header, "lo": lo, "hi": hi, "window": window, "begin": 0, "stop": images, "count": images},
            entries,
        )
        stats = {"scan": scan, "reference": images // 2, **image_stats(volume[images // 2]), "windows": {"u8": window}}
        stats |= {"mask": None, "clipping": {"u8": written["clipping"]}}
        (root / scan / "stats.json").write_text(json.dumps(stats))


@pytest.fixture(scope="module")
def many(outputs, tmp_path_factory) -> tuple[Path, float]:
    """The report of 200 small scans, and how long it took."""
    root = tmp_path_factory.mktemp("many")
    write_many_scans(root / "results", manifest(outputs["results"] / "R1/u8"))
    path = root / "report.html"
    started = time.perf_counter()
    report.write_report([str(root / "results")], str(path), engine.default_workers())
    return path, time.perf_counter() - started


@pytest.mark.slow  # some 15-25 s on 2 cores: 400 plots at 50 ms each
def test_200_scans_make_a_report_of_bounded_size(many):
    path, seconds = many
    shown = Page(path.read_text())
    assert shown.scans == [f"s{n:03d}" for n in range(MANY)]
    assert len(shown.sections) == MANY and len(shown.toc) == MANY
    for n in (0, 123, MANY - 1):
        assert float(shown.section(f"s{n:03d}", "u8")["lo"]) == -2.0 - n / 100
    size = path.stat().st_size
    assert size / MANY < MANY_BYTES_PER_SCAN, f"{size / MANY / 1e3:.1f} kB a scan"
    print(f"200 scans: {size / 1e3:.0f} kB, {size / MANY / 1e3:.1f} kB a scan, {seconds:.1f} s")


# --- in a browser ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium; .ci/run installs it)")
    return found


def open_in_chromium(chromium: str, page: Path, workdir: Path) -> tuple[str, np.ndarray]:
    """The DOM after loading ``page`` from disk, and a 1200 x 1600 screenshot as an RGB array."""
    from PIL import Image

    options = [
        chromium,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--window-size=1200,1600",
        "--virtual-time-budget=5000",
    ]
    screenshot = workdir / "screenshot.png"
    for extra in (
        [f"--user-data-dir={workdir / 'shot'}", f"--screenshot={screenshot}"],
        [f"--user-data-dir={workdir / 'dom'}", "--dump-dom"],
    ):
        done = subprocess.run(
            [*options, *extra, page.resolve().as_uri()],
            capture_output=True,
            text=True,
            timeout=180,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stderr[-2000:]  # a D-Bus complaint on stderr is harmless
    return done.stdout, np.asarray(Image.open(screenshot).convert("RGB"), np.float64)


def assert_not_blank(pixels: np.ndarray) -> None:
    assert pixels.shape[:2] == (1600, 1200)
    assert pixels.std() > 10, f"the screenshot is blank (std {pixels.std():.1f})"


def assert_chromium_shows(chromium: str, path: Path, scans: list[str], workdir: Path) -> None:
    """Chromium's DOM holds a section per scan and output, as the file does, and its screenshot is not blank."""
    dom, pixels = open_in_chromium(chromium, path, workdir)
    shown, written = Page(dom), Page(path.read_text())
    assert shown.scans == scans
    assert [(s["scan"], s["output"], s["lo"]) for s in shown.sections] == [
        (s["scan"], s["output"], s["lo"]) for s in written.sections
    ]
    assert_not_blank(pixels)


@pytest.mark.chromium
def test_chromium_shows_every_scan(chromium, outputs, page, tmp_path):
    assert_chromium_shows(chromium, page[0], ["R1", "R2", "R3", str(outputs["command"]), str(outputs["raw"])], tmp_path)


@pytest.mark.slow
@pytest.mark.chromium
def test_chromium_opens_the_report_of_200_scans(chromium, many, tmp_path):
    assert_chromium_shows(chromium, many[0], [f"s{n:03d}" for n in range(MANY)], tmp_path)


# --- in Snakemake's report ------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.chromium
def test_snakemake_report_of_the_demo_batch(chromium, tmp_path):
    """`snakemake --cores 2 reports`, then `snakemake --report report.html reports` (and .zip) on a
    fresh copy of the workflow: every scan a category, each figure of each output in it."""
    workdir = tmp_path / "wf"
    workdir.mkdir()
    for name in ("Snakefile", "config", "rules", "scripts", "envs", "profiles", "report"):
        (shutil.copytree if (REPO / name).is_dir() else shutil.copy2)(REPO / name, workdir / name)
    scans = ["1001", "1002", "1003", "23912", "87637"]
    for args in (
        ["--cores", "2", "reports"],
        ["--report", "report.html", "reports"],
        ["--report", "report.zip", "reports"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "snakemake", *args],
            cwd=workdir,
            capture_output=True,
            text=True,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-6000:]
    figures = 0
    for scan in scans:
        own = Page((workdir / f"reports/{scan}/report.html").read_text())
        assert own.scans == [scan] and all(s["verify"].startswith("verify: all") for s in own.sections)
        for s in own.sections:
            for name in s["figures"]:
                assert (workdir / f"reports/{scan}/{name}/{s['output']}.png").is_file()
            figures += len(s["figures"])
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        names = archive.namelist()
    assert sum(name.endswith(".png") for name in names) == figures == 45
    assert sum(name.endswith("/report.html") for name in names) == 5 + 1  # each scan's page, and Snakemake's
    dom, pixels = open_in_chromium(chromium, workdir / "report.html", tmp_path)
    assert all(f"scan {scan}" in dom for scan in scans)
    assert_not_blank(pixels)
    print(
        f"Snakemake's report.html: {os.path.getsize(workdir / 'report.html') / 1e3:.0f} kB, "
        f"report.zip: {os.path.getsize(workdir / 'report.zip') / 1e3:.0f} kB"
    )
