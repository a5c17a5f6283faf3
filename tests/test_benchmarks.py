"""The benchmark (benchmarks/): its pure parts on hand-made results, its process measurement on
real children, its volumes against its case specs, and (slow) a whole run at a tiny scale."""

import dataclasses
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest
import tifffile

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
BIN = Path(sys.executable).parent
sys.path.insert(0, str(BENCH))

import cases  # noqa: E402
import commands  # noqa: E402
import measure  # noqa: E402
import volumes  # noqa: E402
from measure import CaseResult, Row, Run  # noqa: E402

import report  # noqa: E402


def row(key: str, times: list[float], rss_mb: float = 100.0, status: str = "ok") -> Row:
    kib = round(rss_mb * measure.MB / 1024)
    return Row(key, key, ["prog"], status, None, times, [kib] * len(times), [0.1] * len(times), [0.01] * len(times))


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
    listed = {r["ratio"]: r["value"] for r in report.ratios([b])}
    assert listed["tomotiff uint8: 2 workers / 1 worker"] == pytest.approx(0.55 / 0.4)
    assert listed["tomotiff uint8 / nabu-cast"] is None
    assert listed["tomotiff uint8: 2 workers / 1 worker, start-up excluded"] == pytest.approx(0.4 / 0.25)
    assert "tomotiff uint8 / naive" not in listed  # no naive row in this case


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
    a = case("A", row("tomotiff-u8-j2", [1.0], rss_mb=190), row("naive-u8", [6.0]))
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
    assert judged["B uint8 -j 2 >= 1.5x naive"] == (pytest.approx(2.0), "PASS")
    assert judged["B uint8 -j 2 >= 1.5x -j 1"] == (pytest.approx(1.2), "FAIL")
    assert judged["B uint8 -j 2 >= 60% of ceiling"] == (None, "N/A")
    assert judged["B float32 >= 70% of ceiling"] == (pytest.approx(0.5), "FAIL")
    assert judged["peak RSS < 400 MB in every tomotiff run"] == (pytest.approx(200, abs=0.01), "PASS")
    assert judged["A peak RSS within 10% at 2x images"][1] == "PASS"
    assert not any(name.startswith(("C ", "D ")) for name in judged)  # cases not run have no target


def test_markdown_from_a_hand_made_result():
    b = case("B", row("tomotiff-u8-j2", [1.0]), row("naive-u8", [3.0]), missing("peer-u8"))
    built = report.build([b], {"nproc": "2"}, {"scale": 0.5, "repeats": 1, "cases": ["B"], "tools": {}})
    text = report.markdown(built)
    assert text.startswith("## Machine\n\n- nproc: 2\n")
    assert "## Results (scale 0.5, median of 1 runs, input warm in page cache)" in text
    assert "| B | tomotiff-u8-j2 | 8 | 1.00 | 34 | 0.10 | 0.01 | 100 | ok |" in text
    assert "| B | peer-u8 | 8 | n/a | n/a | n/a | n/a | n/a | not available: prog not found in /nowhere |" in text
    assert "| B | tomotiff uint8 / naive | 3.00 |" in text
    assert "| B | tomotiff uint8 / nabu-cast | n/a |" in text
    assert text.endswith(
        "## Targets\n\n| target | value | result |\n| --- | ---: | --- |\n"
        "| B uint8 -j 2 >= 1.5x naive | 3.00 | PASS |\n| B uint8 -j 2 >= 1.5x -j 1 | n/a | N/A |\n"
        "| B uint8 -j 2 >= 60% of ceiling | n/a | N/A |\n| B float32 >= 70% of ceiling | n/a | N/A |\n"
        "| peak RSS < 400 MB in every tomotiff run | 100.00 | PASS |"
    )


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


# ---------------------------------------------------------------- the whole program


@pytest.mark.slow
def test_a_tiny_run_of_every_case(tmp_path):
    out = tmp_path / "out.json"
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH / "bench.py"),
            "--scale",
            "0.02",
            "--repeats",
            "1",
            "--cases",
            "A,B,C,D",
            "--json",
            str(out),
            "--workdir",
            str(tmp_path),
            "--tomotiff-bin",
            str(BIN),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert [c["case"] for c in result["cases"]] == ["A", "A-2x", "B", "C", "C-2x", "D"]
    rows = {(c["case"], r["key"]): r for c in result["cases"] for r in c["rows"]}
    assert len(rows) == 3 + 1 + 9 + 4 + 1 + 3
    peer = result["settings"]["tools"]["nabu-cast"]
    for (name, key), r in rows.items():
        if key == "peer-u8" and peer is None:
            assert r["status"].startswith("not available: nabu-cast not found") and r["median_s"] is None
            continue
        assert r["status"] == "ok", (name, key, r["status"])
        assert len(r["times_s"]) == 1 and r["median_s"] > 0 and r["peak_rss_mb"] > 20 and r["mb_per_s"] > 0
    assert rows["B", "tomotiff-u8-start"]["images"] == 1
    measured = [r for r in result["ratios"] if "nabu-cast" not in r["ratio"]]
    assert len(measured) == 12 and all(r["value"] > 0 for r in measured if "start-up" not in r["ratio"])
    assert [(s["case"], s["ratio"] > 0) for s in result["memory_scaling"]] == [("A", True), ("C", True)]
    names = [t["target"] for t in result["targets"]]
    assert names == [t[4] for t in report.SPEED_TARGETS] + [
        "peak RSS < 400 MB in every tomotiff run",
        "A peak RSS within 10% at 2x images",
        "C peak RSS within 10% at 2x images",
    ]
    assert all(t["result"] in ("PASS", "FAIL") for t in result["targets"])
    assert "## Targets\n\n| target | value | result |\n| --- | ---: | --- |\n| A uint8 >= 5x naive |" in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]  # its working directory is gone
