"""The benchmark (benchmarks/): its pure parts on hand-made results, its process measurement on
real children, its page-cache eviction on a real file, its volumes against its case specs, and
(slow) a whole run at a tiny scale."""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import hdf5plugin
import numpy as np
import pytest
import tifffile

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(BENCH))

import cases  # noqa: E402
import commands  # noqa: E402
import measure  # noqa: E402
import pagecache  # noqa: E402
import volumes  # noqa: E402
from measure import CaseResult, Row, Run  # noqa: E402

import report  # noqa: E402
from tomotiff import synthetic  # noqa: E402


def row(key: str, times: list[float], rss_mb: float = 100.0, status: str = "ok", cache: str = "hot") -> Row:
    kib = round(rss_mb * measure.MB / 1024)
    n = len(times)
    return Row(
        key,
        key,
        ["prog"],
        status,
        cache=cache,
        times=times,
        rss_kib=[kib] * n,
        user_s=[0.1] * n,
        sys_s=[0.01] * n,
        resident=[0.0 if cache == "cold" else 1.0] * n,
    )


def cold(key: str, times: list[float], rss_mb: float = 100.0, status: str = "ok") -> Row:
    return row(key, times, rss_mb, status, cache="cold")


def case(name: str, *rows: Row) -> CaseResult:
    return CaseResult(name, f"case {name}", 8, 8 * 4 * 2**20, list(rows))


def missing(key: str) -> Row:
    return Row(key, key, None, status="not available: prog not found in /nowhere")


# ---------------------------------------------------------------- pure parts


def test_median_of_the_runs_and_none_without_figures():
    assert row("x", [3.0, 1.0, 2.0]).median_s == 2.0
    assert row("x", [4.0, 1.0, 2.0, 3.0]).median_s == 2.5
    assert row("x", [1.0], status="failed (exit 1): boom").median_s is None
    assert missing("x").median_s is None and missing("x").peak_rss_mb is None
    assert row("x", [1.0, 1.0], rss_mb=150.0).peak_rss_mb == pytest.approx(150.0, abs=0.01)


def test_speed_ratio_is_slower_over_faster_and_none_when_a_row_has_no_figure():
    b = case("B", row("tomotiff-u8-j2", [1.0, 1.2, 0.8]), row("naive-u8", [4.0, 3.0, 5.0]), missing("peer-u8"))
    assert report.speed_ratio(b, "tomotiff-u8-j2", "naive-u8") == pytest.approx(4.0)
    assert report.speed_ratio(b, "tomotiff-u8-j2", "peer-u8") is None
    assert report.speed_ratio(b, "tomotiff-u8-j2", "ceiling-u8") is None  # no such row


def test_ratios_list_present_pairs_and_the_startup_diagnostic():
    b = case(
        "B",
        row("tomotiff-u8-j2", [0.4]),
        row("tomotiff-u8-j1", [0.55]),
        row("tomotiff-u8-start", [0.15]),
        missing("peer-u8"),
    )
    listed = {r["ratio"]: r["hot"] for r in report.ratios([b])}
    assert listed["tomotiff uint8: 2 workers / 1 worker"] == pytest.approx(0.55 / 0.4)
    assert listed["tomotiff uint8 / nabu-cast"] is None
    assert listed["tomotiff uint8: 2 workers / 1 worker, start-up excluded"] == pytest.approx(0.4 / 0.25)
    assert "tomotiff uint8 / naive" not in listed  # no naive row in this case
    assert all(r["cold"] is None for r in report.ratios([b]))  # no cold runs made


def test_ratios_put_hot_and_cold_side_by_side():
    gzip = case(
        "C-gzip",
        row("tomotiff-u8-j2", [1.0]),
        cold("tomotiff-u8-j2", [2.0]),
        row("tomotiff-u8-j1", [1.5]),
        cold("tomotiff-u8-j1", [3.0]),
        row("naive-u8", [4.0]),
        cold("naive-u8", [7.0]),
        row("ceiling-u8", [0.5]),
        cold("ceiling-u8", [1.6]),
    )
    listed = {r["ratio"]: (r["hot"], r["cold"]) for r in report.ratios([gzip])}
    assert listed == {
        "tomotiff uint8 / naive": (pytest.approx(4.0), pytest.approx(3.5)),
        "tomotiff uint8 / ceiling": (pytest.approx(0.5), pytest.approx(0.8)),
        "tomotiff uint8: 2 workers / 1 worker": (pytest.approx(1.5), pytest.approx(1.5)),
    }
    assert gzip.row("naive-u8").median_s == 4.0 and gzip.row("naive-u8", "cold").median_s == 7.0


def test_targets_pass_fail_and_na():
    b = case(
        "B",
        row("tomotiff-u8-j2", [1.0], rss_mb=150),
        row("tomotiff-u8-j1", [1.2], rss_mb=90),
        row("naive-u8", [2.0]),
        missing("ceiling-u8"),
        row("tomotiff-fp-j2", [1.0]),
        row("ceiling-fp", [0.5]),
    )
    a = case(
        "A",
        row("tomotiff-u8-j2", [1.0], rss_mb=190),
        row("tomotiff-u8-j1", [1.6]),
        row("naive-u8", [6.0]),
        cold("tomotiff-u8-j2", [3.0], rss_mb=380),
        cold("ceiling-u8", [2.5]),
    )
    a2 = case("A-2x", row("tomotiff-u8-j2", [2.0], rss_mb=200))
    results = [a, a2, b]
    scaling = report.memory_scaling(results)
    assert scaling == [
        {
            "case": "A",
            "rss_mb": pytest.approx(190, abs=0.01),
            "rss_mb_doubled": pytest.approx(200, abs=0.01),
            "ratio": pytest.approx(200 / 190, abs=1e-4),
        }
    ]
    judged = {t["target"]: (t["value"], t["result"]) for t in report.targets(results, scaling)}
    assert judged["A uint8 >= 5x naive"] == (pytest.approx(6.0), "PASS")
    assert judged["A uint8 >= 8x naive"] == (pytest.approx(6.0), "FAIL")
    assert judged["A uint8 -j 2 >= 1.5x -j 1"] == (pytest.approx(1.6), "PASS")
    assert judged["A uint8 -j 2 cold >= 80% of cold ceiling"] == (pytest.approx(2.5 / 3.0), "PASS")
    assert judged["B uint8 -j 2 >= 1.5x naive"] == (pytest.approx(2.0), "PASS")
    assert judged["B uint8 -j 2 >= 1.5x -j 1"] == (pytest.approx(1.2), "FAIL")
    assert judged["B uint8 -j 2 >= 60% of ceiling"] == (None, "N/A")
    assert judged["B uint8 -j 2 cold >= 80% of cold ceiling"] == (None, "N/A")  # B has no cold rows
    assert judged["B float32 >= 70% of ceiling"] == (pytest.approx(0.5), "FAIL")
    assert judged["peak RSS < 400 MB in every tomotiff run"] == (pytest.approx(380, abs=0.01), "PASS")  # cold too
    assert judged["A peak RSS within 10% at 2x images"][1] == "PASS"
    assert not any(name.startswith(("C", "D ")) for name in judged)  # cases not run have no target


def test_compressed_cases_targets():
    """Issue 15's thresholds: -j 2 over -j 1 at 1.7x (gzip, Blosc) or 1.5x (bitshuffle-LZ4), 3x naive,
    and memory flat when the volume doubles."""
    results = [
        case("C-gzip", row("tomotiff-u8-j2", [1.0]), row("tomotiff-u8-j1", [1.6]), row("naive-u8", [3.1])),
        case("C-gzip-2x", row("tomotiff-u8-j2", [2.0], rss_mb=115)),
        case("C-bslz4", row("tomotiff-u8-j2", [1.0]), row("tomotiff-u8-j1", [1.6]), row("naive-u8", [2.9])),
        case("C-blosc", row("tomotiff-u8-j2", [1.0]), row("tomotiff-u8-j1", [1.7]), missing("naive-u8")),
    ]
    scaling = report.memory_scaling(results)
    judged = {t["target"]: t["result"] for t in report.targets(results, scaling)}
    assert judged == {
        "C-gzip uint8 -j 2 >= 1.7x -j 1": "FAIL",
        "C-gzip uint8 -j 2 >= 3x naive": "PASS",
        "C-bslz4 uint8 -j 2 >= 1.5x -j 1": "PASS",
        "C-bslz4 uint8 -j 2 >= 3x naive": "FAIL",
        "C-blosc uint8 -j 2 >= 1.7x -j 1": "PASS",
        "C-blosc uint8 -j 2 >= 3x naive": "N/A",
        "peak RSS < 400 MB in every tomotiff run": "PASS",
        "C-gzip peak RSS within 10% at 2x images": "FAIL",
    }


def test_markdown_from_a_hand_made_result():
    b = case(
        "B",
        row("tomotiff-u8-j2", [1.0]),
        cold("tomotiff-u8-j2", [2.0], rss_mb=120),
        row("naive-u8", [3.0]),
        cold("naive-u8", [4.0], status="input still 40% in the page cache after eviction: not measurable"),
        missing("peer-u8"),
        dataclasses.replace(missing("peer-u8"), cache="cold"),
    )
    b.file_bytes = b.input_bytes // 2
    settings = {"scale": 0.5, "repeats": 1, "cases": ["B"], "cold": True, "tools": {}}
    text = report.markdown(report.build([b], {"nproc": "2"}, settings))
    assert text.startswith("## Machine\n\n- nproc: 2\n")
    assert "| B | case B | 8 | 34 | 17 | 2.00 |" in text  # pixels, file, compression
    assert (
        "## Results (scale 0.5, median of 1 runs; hot: input in the page cache, cold: evicted before each run)" in text
    )
    assert "| B | tomotiff-u8-j2 | 8 | 1.00 | 34 | 2.00 | 17 | 0.10 | 0.01 | 120 | ok |" in text
    assert (
        "| B | naive-u8 | 8 | 3.00 | 11 | n/a | n/a | 0.10 | 0.01 | 100 | "
        "cold: input still 40% in the page cache after eviction: not measurable |"
    ) in text
    assert (
        "| B | peer-u8 | 8 | n/a | n/a | n/a | n/a | n/a | n/a | n/a | not available: prog not found in /nowhere |"
        in text
    )
    assert "hot runs with at least 100.0%, cold runs with at most 0.0%." in text
    assert "| B | tomotiff uint8 / naive | 3.00 | n/a |" in text
    assert "| B | tomotiff uint8 / nabu-cast | n/a | n/a |" in text
    assert text.endswith(
        "## Targets\n\n| target | value | result |\n| --- | ---: | --- |\n"
        "| B uint8 -j 2 >= 1.5x naive | 3.00 | PASS |\n| B uint8 -j 2 >= 1.5x -j 1 | n/a | N/A |\n"
        "| B uint8 -j 2 >= 60% of ceiling | n/a | N/A |\n| B uint8 -j 2 cold >= 80% of cold ceiling | n/a | N/A |\n"
        "| B float32 >= 70% of ceiling | n/a | N/A |\n"
        "| peak RSS < 400 MB in every tomotiff run | 120.00 | PASS |"
    )
    hot_only = report.markdown(report.build([b], {}, {**settings, "cold": False}))
    assert "cold: not run (--no-cold)" in hot_only


def test_judge_says_why_a_run_has_no_figure():
    ok = Run(0, False, 1.0, 10**9, 0.5, 0.1)
    assert measure.judge(ok, 4, 4, "") == "ok"
    assert measure.judge(dataclasses.replace(ok, timed_out=True), 0, 4, "") == f"timeout after {measure.TIMEOUT_S} s"
    assert measure.judge(dataclasses.replace(ok, exit_code=2), 4, 4, "Traceback\nValueError: bad\n") == (
        "failed (exit 2): ValueError: bad"
    )
    assert measure.judge(ok, 3, 4, "") == "wrote 3 files for 4 images"
    assert "not measurable" in measure.judge(dataclasses.replace(ok, rss_kib=1), 4, 4, "")


def test_a_missing_program_gives_a_not_available_row(tmp_path):
    tools = {name: commands.find_tool(name, tmp_path) for name in commands.TOMOTIFF_TOOLS}
    assert tools["nxs2tiffux"] == commands.Tool(None, f"nxs2tiffux not found in {tmp_path}")
    volume = cases.volume_for(cases.CASES["B"], 4, tmp_path)
    volume.path.touch()
    peer = commands.Tool(None, "nabu-cast not found")
    rows = {r.key: r for r in commands.case_rows(volume, tools, peer, None, tmp_path / "out")}
    assert list(rows) == [
        "tomotiff-u8-j2",
        "tomotiff-u8-j1",
        "tomotiff-u8-start",
        "tomotiff-fp-j2",
        "naive-u8",
        "naive-fp",
        "ceiling-u8",
        "ceiling-fp",
        "peer-u8",
    ]
    assert rows["tomotiff-u8-start"].status == f"not available: nxs2tiffux not found in {tmp_path}"
    assert rows["tomotiff-fp-j2"].status == f"not available: nxs2tiff not found in {tmp_path}"
    assert rows["peer-u8"].argv is None and rows["peer-u8"].status == "not available: nabu-cast not found"
    assert rows["naive-u8"].argv[:2] == [sys.executable, str(BENCH / "naive.py")] and rows["naive-u8"].status == "ok"
    assert "--hdf5plugin" not in rows["naive-u8"].argv  # plain h5py, as the figures before the flag


@pytest.mark.parametrize("name", ["A", "C-gzip", "C-bslz4", "C-blosc"])
def test_rows_of_a_and_the_compressed_cases(tmp_path, name):
    """-j 2, -j 1, the naive loop (importing hdf5plugin where chunks are compressed) and the ceiling;
    measure.with_cold gives each its cold twin, next to it."""
    tools = {n: commands.Tool(f"/bin/{n}") for n in commands.TOMOTIFF_TOOLS}
    volume = cases.volume_for(cases.CASES[name], 4, tmp_path)
    rows = commands.case_rows(volume, tools, commands.Tool(None, "-"), None, tmp_path / "out")
    assert [r.key for r in rows] == ["tomotiff-u8-j2", "tomotiff-u8-j1", "naive-u8", "ceiling-u8"]
    assert rows[1].argv[rows[1].argv.index("-j") + 1] == "1"
    assert ("--hdf5plugin" in rows[2].argv) == (name != "A")
    both = measure.with_cold(rows)
    assert [(r.key, r.cache) for r in both[:2]] == [("tomotiff-u8-j2", "hot"), ("tomotiff-u8-j2", "cold")]
    assert both[1].argv == both[0].argv and both[1].times is not both[0].times


def test_cases_are_named_in_any_case_and_big_is_whole_chunk_layers():
    assert cases.case_named("c-GZIP") is cases.CASES["C-gzip"] and cases.case_named("E") is None
    assert cases.big_images(32) == 7616 and cases.big_images(32) % 32 == 0
    assert cases.big_bytes(7616) == 7616 * 4 * 2**20 and cases.big_images(0.001) == 32
    assert cases.big_disk_needed(32) == 32 * 5 * 2**20  # float32 input and its uint8 output


def test_big_refuses_in_one_line_without_the_disk_space(tmp_path):
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench.py"), "--cases", "none", "--big", "1e6", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("--big needs about 1250000") and done.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_nabu_cast_is_used_only_if_it_runs(tmp_path, monkeypatch):
    fake = tmp_path / "nabu-cast"
    monkeypatch.setenv("PATH", str(tmp_path))
    if shutil.which("nabu-cast", path=str(BIN)):
        pytest.skip("a real nabu-cast is installed next to this Python")
    assert commands.find_peer().why == f"nabu-cast not found in {BIN} or on PATH (pip install nabu provides it)"
    fake.write_text("#!/bin/sh\necho 'nabu: cannot import silx' >&2\nexit 1\n")
    fake.chmod(0o755)
    assert commands.find_peer() == commands.Tool(None, f"{fake} --help failed: nabu: cannot import silx")
    fake.write_text("#!/bin/sh\nexit 0\n")
    assert commands.find_peer() == commands.Tool(str(fake))


# ---------------------------------------------------------------- processes and volumes


def test_run_command_reads_the_childs_own_time_and_peak_rss(tmp_path):
    """A child that fills more memory than this process ever held shows that as its peak RSS
    (below our own peak it would read as ours); its sleep shows in wall time, not CPU time."""
    size = measure.own_peak_kib() * 1024 + (100 << 20)
    grow = f"import time; b = b'x' * {size}; time.sleep(0.3)"
    run = measure.run_command([sys.executable, "-c", grow], tmp_path / "err", 60)
    assert run.exit_code == 0 and not run.timed_out
    assert size < run.rss_kib * 1024 < size + (50 << 20)
    assert run.wall_s >= 0.3 and run.user_s + run.sys_s < run.wall_s - 0.2
    failed = measure.run_command([sys.executable, "-c", "import sys; sys.exit('no such input')"], tmp_path / "err", 60)
    assert failed.exit_code == 1 and (tmp_path / "err").read_text().strip() == "no such input"


def running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie waiting for its reaper does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_run_command_kills_the_whole_session_on_timeout(tmp_path):
    started = time.perf_counter()
    pidfile = tmp_path / "pid"
    run = measure.run_command(["sh", "-c", f"sleep 30 & echo $! > {pidfile}; wait"], tmp_path / "err", 0.5)
    assert run.timed_out and run.exit_code == -9
    grandchild = int(pidfile.read_text())
    while running(grandchild) and time.perf_counter() - started < 5:
        time.sleep(0.05)
    assert not running(grandchild)
    assert time.perf_counter() - started < 5


def test_the_measuring_process_imports_no_numpy_or_h5py():
    """A child's ru_maxrss can read no lower than its parent's peak: bench.py must stay small."""
    probe = (
        f"import sys; sys.path.insert(0, {str(BENCH)!r}); import bench; "
        "print(sorted({'numpy', 'h5py', 'tifffile', 'tomotiff'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_eviction_empties_the_page_cache_and_warming_fills_it(tmp_path):
    """On a real file: written (dirty), read, evicted, read back; mincore's count against fincore's."""
    path = tmp_path / "input.bin"
    path.write_bytes(os.urandom(8 << 20) + b"tail")  # a partial last page too
    assert path.read_bytes()[-4:] == b"tail"
    assert pagecache.resident_fraction([path]) == 1.0
    assert pagecache.prepare("cold", [path]) == 0.0
    fincore = shutil.which("fincore")
    if fincore:
        pages = subprocess.run([fincore, "-n", "-b", "-o", "PAGES", str(path)], capture_output=True, text=True)
        assert pages.stdout.split() == ["0"]
    assert pagecache.prepare("hot", [path]) == 1.0
    if fincore:
        pages = subprocess.run([fincore, "-n", "-o", "PAGES", str(path)], capture_output=True, text=True)
        assert pages.stdout.split() == [str(-(-path.stat().st_size // os.sysconf("SC_PAGE_SIZE")))]
    empty = tmp_path / "empty"
    empty.touch()
    assert pagecache.resident_pages(empty) == (0, 0) and pagecache.evict([path, empty]) == 0.0


def test_a_run_whose_input_is_not_where_it_should_be_is_not_measured():
    assert pagecache.cache_status("cold", 0.0) == pagecache.cache_status("hot", 1.0) == "ok"
    assert pagecache.cache_status("cold", 0.004) == "ok" and pagecache.cache_status("hot", 0.995) == "ok"
    assert pagecache.cache_status("cold", 0.37) == (
        "input still 37% in the page cache after eviction: cold figure not measurable"
    )
    assert "hot figure not measurable" in pagecache.cache_status("hot", 0.5)


def test_measure_runs_hot_and_cold_and_skips_a_row_whose_eviction_failed(tmp_path, monkeypatch):
    """The run order alternates hot and cold; a cold row whose input stayed cached is never spawned."""
    inputs = [tmp_path / "input.bin"]
    inputs[0].write_bytes(b"x" * 4096)
    prepared = []

    def fake_prepare(cache, paths):
        prepared.append(cache)
        return 0.5 if cache == "cold" else 1.0

    monkeypatch.setattr(measure, "prepare", fake_prepare)
    rows = measure.with_cold([Row("missing", "missing program", ["/nonexistent/program"])])
    (tmp_path / "out").mkdir()
    measure.run_once(rows[1], tmp_path / "out", 1, inputs)
    assert prepared == ["cold"] and rows[1].times == [] and "cold figure not measurable" in rows[1].status
    assert rows[0].status == "ok"  # the hot twin keeps its own status


@pytest.mark.parametrize("name", sorted(cases.CASES))
def test_volumes_have_the_layout_their_case_describes(tmp_path, name):
    spec = dataclasses.replace(cases.CASES[name], image_shape=(12, 10))
    path = cases.volume_for(spec, 5, tmp_path).path
    volumes.WRITERS[spec.layout](spec, 5, path)
    if spec.dataset is None:
        names = sorted(p.name for p in path.iterdir())
        assert names == [cases.TIFF_PATTERN % i for i in range(5)]
        image = tifffile.imread(path / names[0])
        assert image.shape == spec.image_shape and image.dtype == spec.dtype
        return
    with h5py.File(path) as f:
        data = f[spec.dataset]
        shape = [12, 10]
        shape.insert(spec.axis, 5)
        assert data.shape == tuple(shape) and data.dtype == spec.dtype
        expected = None if spec.chunks is None else tuple(min(c, s) for c, s in zip(spec.chunks, shape))
        assert data.chunks == expected
        lo, hi = spec.window
        assert lo < float(data[...].mean()) < hi  # the window cuts through the images, not beside them


FILTER_IDS = {"gzip": [h5py.h5z.FILTER_SHUFFLE, h5py.h5z.FILTER_DEFLATE], "bslz4": [32008], "blosc": [32001]}


@pytest.mark.parametrize("name", ["C-gzip", "C-bslz4", "C-blosc"])
def test_compressed_cases_are_filtered_gda_files_of_synthetic_projections(tmp_path, name):
    """Their chunks carry the case's filters (read back through hdf5plugin), their pixels are
    synthetic.projection's, and they are NXtomo files with an image_key, as case C."""
    spec = dataclasses.replace(cases.CASES[name], image_shape=(64, 48))
    path = cases.volume_for(spec, 3, tmp_path).path
    volumes.write_gda(spec, 3, path)
    with h5py.File(path) as f:
        data = f[spec.dataset]
        assert data.shape == (3, 64, 48) and data.dtype == np.uint16 and data.chunks == (1, 64, 48)
        plist = data.id.get_create_plist()
        assert [plist.get_filter(i)[0] for i in range(plist.get_nfilters())] == FILTER_IDS[spec.compression]
        if spec.compression == "gzip":
            assert data.compression == "gzip" and data.compression_opts == 1 and data.shuffle
        if spec.compression == "blosc":
            assert plist.get_filter(0)[2][4:7] == (5, hdf5plugin.Blosc.BITSHUFFLE, 5)  # clevel, shuffle, zstd
        for index in range(3):
            assert np.array_equal(data[index], synthetic.projection(index, 64, 48))
        assert list(f["/entry1/tomo_entry/instrument/detector/image_key"]) == [0, 0, 0]
        assert f["/entry1/tomo_entry/data/data"].id == data.id
        assert data.id.get_storage_size() < data.nbytes  # noisy counts still compress


def test_the_big_volume_is_whole_chunk_layers_of_distinct_values(tmp_path):
    spec = dataclasses.replace(cases.BIG, image_shape=(12, 10), chunks=(4, 8, 4))
    path = tmp_path / "big.h5"
    volumes.write_big(spec, 20, path)
    with h5py.File(path) as f:
        data = f[spec.dataset]
        assert data.shape == (12, 20, 10) and data.dtype == np.float32 and data.chunks == (4, 8, 4)
        volume = data[...]
    base = volumes.big_layer(spec, 8)
    assert np.array_equal(volume[:, :8], base) and np.array_equal(volume[:, 16:], base[:, :4] + np.float32(2e-5))
    assert np.array_equal(volume[:, 8:16], base + np.float32(1e-5))  # each layer shifted: not the same bytes
    lo, hi = spec.window
    assert np.unique(volume).size > volume.size // 2 and lo < volume.mean() < hi


# ---------------------------------------------------------------- the whole program


def run_bench(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    """bench.py at a tiny scale in `tmp_path`, with this environment's tomotiff; its output and JSON."""
    out = tmp_path / "out.json"
    argv = [sys.executable, str(BENCH / "bench.py"), "--repeats", "1", "--json", str(out)]
    argv += ["--workdir", str(tmp_path), "--tomotiff-bin", str(BIN), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # its working directory is gone
    return done, json.loads(out.read_text())


@pytest.mark.slow
def test_a_tiny_run_of_every_case(tmp_path):
    done, result = run_bench(tmp_path, "--scale", "0.02", "--cases", ",".join(cases.CASES))
    assert [c["case"] for c in result["cases"]] == [
        "A",
        "A-2x",
        "B",
        "C",
        "C-2x",
        "C-gzip",
        "C-gzip-2x",
        "C-bslz4",
        "C-blosc",
        "D",
    ]
    rows = {(c["case"], r["key"], r["cache"]): r for c in result["cases"] for r in c["rows"]}
    commands_run = 4 + 1 + 9 + 4 + 1 + (4 + 1 + 4 + 4) + 3
    assert len(rows) == 2 * commands_run and {cache for _, _, cache in rows} == {"hot", "cold"}
    peer = result["settings"]["tools"]["nabu-cast"]
    for (name, key, cache), r in rows.items():
        if key == "peer-u8" and peer is None:
            assert r["status"].startswith("not available: nabu-cast not found") and r["median_s"] is None
            continue
        assert r["status"] == "ok", (name, key, cache, r["status"])
        assert len(r["times_s"]) == 1 and r["median_s"] > 0 and r["peak_rss_mb"] > 20 and r["mb_per_s"] > 0
        [resident] = r["resident_before"]
        assert resident <= pagecache.COLD_MAX if cache == "cold" else resident >= pagecache.HOT_MIN
    assert rows["B", "tomotiff-u8-start", "hot"]["images"] == 1
    compressed = {c["case"]: c["input_bytes"] / c["file_bytes"] for c in result["cases"] if c["case"][2:] in FILTER_IDS}
    assert all(1.1 < ratio < 3 for ratio in compressed.values()), compressed  # noisy counts: not zeros
    measured = [r for r in result["ratios"] if "nabu-cast" not in r["ratio"]]
    assert len(measured) == 22
    assert all(r[cache] > 0 for r in measured if "start-up" not in r["ratio"] for cache in ("hot", "cold"))
    assert [(s["case"], s["ratio"] > 0) for s in result["memory_scaling"]] == [
        ("A", True),
        ("C", True),
        ("C-gzip", True),
    ]
    names = [t["target"] for t in result["targets"]]
    assert names == [t.name for t in report.SPEED_TARGETS] + [
        "peak RSS < 400 MB in every tomotiff run",
        "A peak RSS within 10% at 2x images",
        "C peak RSS within 10% at 2x images",
        "C-gzip peak RSS within 10% at 2x images",
    ]
    assert all(t["result"] in ("PASS", "FAIL") for t in result["targets"])
    assert "## Targets\n\n| target | value | result |\n| --- | ---: | --- |\n| A uint8 >= 5x naive |" in done.stdout


@pytest.mark.slow
def test_a_tiny_big_run(tmp_path):
    """--big at 0.1 GB (one chunk layer): written, run once cold, reported, removed."""
    done, result = run_bench(tmp_path, "--cases", "none", "--big", "0.1")
    [big] = result["cases"]
    [r] = big["rows"]
    assert (big["case"], big["images"], big["input_bytes"]) == ("BIG", 32, 32 * 4 * 2**20)
    assert (r["key"], r["cache"], r["status"], len(r["times_s"])) == ("tomotiff-u8-j2", "cold", "ok", 1)
    assert r["resident_before"][0] <= pagecache.COLD_MAX and r["mb_per_s"] > 0 and r["peak_rss_mb"] > 20
    assert result["settings"]["big_gb"] == pytest.approx(0.134, abs=0.001)
    assert "| BIG | tomotiff uint8 -j 2 | 32 | n/a | n/a |" in done.stdout


@pytest.mark.slow
def test_chunk_costs_reports_every_step_of_every_case(tmp_path):
    """benchmarks/chunk_costs.py at its smallest: a row per case and step, each with a cost."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "chunk_costs.py"), "--images", "1", "--repeats", "1", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=BENCH,
    )
    assert done.returncode == 0, done.stderr
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines()[2:]]
    found = {(row[0].strip(), row[4].strip()) for row in rows if row[5].strip() != "n/a"}
    steps = ("read, hot", "read, cold", "decode", "h5py")
    assert found == {(case, step) for case in ("C-gzip", "C-bslz4", "C-blosc", "A") for step in steps}
    assert list(tmp_path.iterdir()) == []  # its volumes are removed
