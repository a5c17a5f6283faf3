"""From measured rows to the report: ratios, memory scaling, targets, Markdown and JSON.

Pure functions of the results, so they can be checked on hand-made ones. A row without
figures (not available, failed) makes every ratio and target that needs it n/a and N/A.
"""

from __future__ import annotations

from typing import NamedTuple

from cases import BIG
from measure import MB, CaseResult, Row

RSS_LIMIT_MB = 400.0
RSS_SCALING_TOLERANCE = 0.10

RATIOS = (  # (faster row, slower row, name): speed ratio = median time of slower / median time of faster
    ("tomotiff-u8-j2", "naive-u8", "tomotiff uint8 / naive"),
    ("tomotiff-u8-j2", "ceiling-u8", "tomotiff uint8 / ceiling"),
    ("tomotiff-u8-j2", "peer-u8", "tomotiff uint8 / nabu-cast"),
    ("tomotiff-u8-j2", "tomotiff-u8-j1", "tomotiff uint8: 2 workers / 1 worker"),
    ("tomotiff-fp-j2", "naive-fp", "tomotiff float32 / naive"),
    ("tomotiff-fp-j2", "ceiling-fp", "tomotiff float32 / ceiling"),
)
CACHES = ("hot", "cold")


class SpeedTarget(NamedTuple):
    """`faster` must run at least `minimum` times as fast as `slower` on `case`, both `cache`."""

    case: str
    faster: str
    slower: str
    minimum: float
    name: str
    cache: str = "hot"


def compressed_targets(case: str, workers: float) -> tuple[SpeedTarget, ...]:
    """Issue 15's: the second worker must pay off on decoding, and tomotiff beat h5py's own decoding."""
    return (
        SpeedTarget(case, "tomotiff-u8-j2", "tomotiff-u8-j1", workers, f"{case} uint8 -j 2 >= {workers:g}x -j 1"),
        SpeedTarget(case, "tomotiff-u8-j2", "naive-u8", 3.0, f"{case} uint8 -j 2 >= 3x naive"),
    )


SPEED_TARGETS = (
    SpeedTarget("A", "tomotiff-u8-j2", "naive-u8", 5.0, "A uint8 >= 5x naive"),
    SpeedTarget("A", "tomotiff-u8-j2", "naive-u8", 8.0, "A uint8 >= 8x naive"),
    SpeedTarget("A", "tomotiff-u8-j2", "tomotiff-u8-j1", 1.5, "A uint8 -j 2 >= 1.5x -j 1"),
    SpeedTarget("A", "tomotiff-u8-j2", "ceiling-u8", 0.8, "A uint8 -j 2 cold >= 80% of cold ceiling", "cold"),
    SpeedTarget("B", "tomotiff-u8-j2", "naive-u8", 1.5, "B uint8 -j 2 >= 1.5x naive"),
    SpeedTarget("B", "tomotiff-u8-j2", "tomotiff-u8-j1", 1.5, "B uint8 -j 2 >= 1.5x -j 1"),
    SpeedTarget("B", "tomotiff-u8-j2", "ceiling-u8", 0.6, "B uint8 -j 2 >= 60% of ceiling"),
    SpeedTarget("B", "tomotiff-u8-j2", "ceiling-u8", 0.8, "B uint8 -j 2 cold >= 80% of cold ceiling", "cold"),
    SpeedTarget("B", "tomotiff-fp-j2", "ceiling-fp", 0.7, "B float32 >= 70% of ceiling"),
    SpeedTarget("C", "tomotiff-u8-j2", "naive-u8", 2.0, "C uint8 >= 2x naive"),
    *compressed_targets("C-gzip", 1.7),
    *compressed_targets("C-bslz4", 1.5),
    *compressed_targets("C-blosc", 1.7),
    SpeedTarget("D", "tomotiff-u8-j2", "naive-u8", 1.3, "D uint8 >= 1.3x naive"),
)


def speed_ratio(case: CaseResult, faster: str, slower: str, cache: str = "hot") -> float | None:
    """How many times faster `faster` ran than `slower`, both `cache`; None if either has no measurement."""
    fast, slow = case.row(faster, cache), case.row(slower, cache)
    if fast is None or slow is None or fast.median_s is None or slow.median_s is None:
        return None
    return slow.median_s / fast.median_s


def workers_ratio_after_startup(case: CaseResult, cache: str = "hot") -> float | None:
    """2 workers / 1 worker on the work alone: both medians less the first-image-only run's.
    A diagnostic, not a target: it shows how much of the whole commands' ratio the fixed start-up takes."""
    rows = [case.row(key, cache) for key in ("tomotiff-u8-j2", "tomotiff-u8-j1", "tomotiff-u8-start")]
    times = [None if r is None else r.median_s for r in rows]
    if None in times or times[0] <= times[2]:
        return None
    two, one, start = times
    return (one - start) / (two - start)


def ratios(results: list[CaseResult]) -> list[dict]:
    """Every RATIOS pair present in a case, hot and cold side by side, measured or not, so missing
    tools show as n/a (and cold as n/a when the cold runs were not made)."""
    pairs = [
        {"case": c.name, "ratio": name, **{cache: speed_ratio(c, faster, slower, cache) for cache in CACHES}}
        for c in results
        for faster, slower, name in RATIOS
        if any(c.row(faster, cache) and c.row(slower, cache) for cache in CACHES)
    ]
    after_startup = [
        {
            "case": c.name,
            "ratio": "tomotiff uint8: 2 workers / 1 worker, start-up excluded",
            **{cache: workers_ratio_after_startup(c, cache) for cache in CACHES},
        }
        for c in results
        if c.row("tomotiff-u8-start")
    ]
    return pairs + after_startup


def memory_scaling(results: list[CaseResult]) -> list[dict]:
    """Peak RSS of tomotiff on twice the images (case "<name>-2x") over its peak RSS on the base volume,
    hot runs (a cold run's page cache is not its RSS, so both are alike)."""
    by_name = {c.name: c for c in results}
    rows = []
    for case in (c for c in results if f"{c.name}-2x" in by_name):
        base = case.row("tomotiff-u8-j2").peak_rss_mb
        doubled = by_name[f"{case.name}-2x"].row("tomotiff-u8-j2").peak_rss_mb
        ratio = doubled / base if base and doubled else None
        rows.append({"case": case.name, "rss_mb": base, "rss_mb_doubled": doubled, "ratio": ratio})
    return rows


def verdict(ok: bool | None) -> str:
    return "N/A" if ok is None else ("PASS" if ok else "FAIL")


def targets(results: list[CaseResult], scaling: list[dict]) -> list[dict]:
    """Every target whose case was run, with its measured value and PASS/FAIL/N/A."""
    by_name = {c.name: c for c in results}
    out = []
    for t in SPEED_TARGETS:
        if t.case in by_name:
            value = speed_ratio(by_name[t.case], t.faster, t.slower, t.cache)
            out.append(
                {"target": t.name, "value": value, "result": verdict(None if value is None else value >= t.minimum)}
            )
    peaks = [r.peak_rss_mb for c in results for r in c.rows if r.key.startswith("tomotiff") and r.peak_rss_mb]
    out.append(
        {
            "target": f"peak RSS < {RSS_LIMIT_MB:.0f} MB in every tomotiff run",
            "value": max(peaks, default=None),
            "result": verdict(max(peaks) < RSS_LIMIT_MB if peaks else None),
        }
    )
    for s in scaling:
        ok = None if s["ratio"] is None else abs(s["ratio"] - 1) <= RSS_SCALING_TOLERANCE
        out.append(
            {"target": f"{s['case']} peak RSS within 10% at 2x images", "value": s["ratio"], "result": verdict(ok)}
        )
    return out


def row_json(case: CaseResult, r: Row) -> dict:
    """One command's runs in one cache state: every time and RSS, and the input's resident share
    before each run (how hot or cold it really was)."""
    images = r.images or case.images
    return {
        "key": r.key,
        "label": r.label,
        "cache": r.cache,
        "argv": r.argv,
        "status": r.status,
        "images": images,
        "times_s": r.times,
        "median_s": r.median_s,
        "peak_rss_mb": r.peak_rss_mb,
        "rss_mb": [k * 1024 / MB for k in r.rss_kib],
        "user_s": r.user_s,
        "sys_s": r.sys_s,
        "median_user_s": r.median_of(r.user_s),
        "median_sys_s": r.median_of(r.sys_s),
        "resident_before": r.resident,
        "mb_per_s": case.input_bytes * images / case.images / MB / r.median_s if r.median_s else None,
    }


def case_json(case: CaseResult) -> dict:
    """Everything measured, including each run's time and RSS, for comparing runs later."""
    return {
        "case": case.name,
        "description": case.description,
        "images": case.images,
        "input_bytes": case.input_bytes,
        "file_bytes": case.file_bytes,
        "rows": [row_json(case, r) for r in case.rows],
    }


def build(results: list[CaseResult], machine: dict[str, str], settings: dict) -> dict:
    """The whole report as one JSON-ready dict: what markdown() prints and --json writes."""
    scaling = memory_scaling(results)
    return {
        "machine": machine,
        "settings": settings,
        "cases": [case_json(c) for c in results],
        "ratios": ratios(results),
        "memory_scaling": scaling,
        "targets": targets(results, scaling),
    }


def fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


RESULTS_HEADER = [
    "case",
    "command",
    "images",
    "hot s",
    "hot MB/s",
    "cold s",
    "cold MB/s",
    "user s",
    "sys s",
    "peak RSS MB",
    "status",
]


def line(cells: list[str]) -> str:
    return f"| {' | '.join(cells)} |"


def section(title: str, align: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """A heading and its table; `align` has one letter per column: l for text, r for numbers."""
    rule = ["---" if a == "l" else "---:" for a in align]
    return ["", f"## {title}", "", line(header), line(rule), *map(line, rows)]


def commands(case: dict) -> list[tuple[dict | None, dict | None]]:
    """The case's commands in run order, each as its (hot, cold) rows; either may be absent
    (--no-cold runs no cold rows, --big no hot one)."""
    keys = list(dict.fromkeys(r["key"] for r in case["rows"]))
    by = {(r["key"], r["cache"]): r for r in case["rows"]}
    return [(by.get((k, "hot")), by.get((k, "cold"))) for k in keys]


def status_cell(hot: dict | None, cold: dict | None) -> str:
    """'ok' when every run was; one status when hot and cold share it (not available); else each."""
    states = [(name, r["status"]) for name, r in (("hot", hot), ("cold", cold)) if r]
    if all(status == "ok" for _, status in states):
        return "ok"
    if len({status for _, status in states}) == 1:
        return states[0][1]
    return "; ".join(f"{name}: {status}" for name, status in states if status != "ok")


def result_cells(case: dict, hot: dict | None, cold: dict | None) -> list[str]:
    """Hot and cold side by side; CPU seconds of the hot runs (of the cold ones without hot), the peak
    RSS of them all."""
    first = hot or cold
    peaks = [r["peak_rss_mb"] for r in (hot, cold) if r and r["peak_rss_mb"]]
    return [
        case["case"],
        first["label"],
        str(first["images"]),
        fmt(hot and hot["median_s"], ".2f"),
        fmt(hot and hot["mb_per_s"], ".0f"),
        fmt(cold and cold["median_s"], ".2f"),
        fmt(cold and cold["mb_per_s"], ".0f"),
        fmt(first["median_user_s"], ".2f"),
        fmt(first["median_sys_s"], ".2f"),
        fmt(max(peaks, default=None), ".0f"),
        status_cell(hot, cold),
    ]


def residency_note(report: dict) -> str:
    """How hot and cold the inputs really were, from mincore before each run."""
    before = {cache: [] for cache in CACHES}
    for case in report["cases"]:
        for r in case["rows"]:
            before[r["cache"]] += r["resident_before"]
    parts = [f"hot runs with at least {min(before['hot']):.1%}"] if before["hot"] else []
    if before["cold"]:
        parts.append(f"cold runs with at most {max(before['cold']):.1%}")
    return f"Input in the page cache when each run began (mincore): {', '.join(parts) or 'no runs'}."


def input_cells(case: dict) -> list[str]:
    pixels, on_disk = case["input_bytes"], case["file_bytes"]
    return [
        case["case"],
        case["description"],
        str(case["images"]),
        fmt(pixels / MB, ".0f"),
        fmt(on_disk and on_disk / MB, ".0f"),
        fmt(on_disk and pixels / on_disk, ".2f"),
    ]


def markdown(report: dict) -> str:
    """The report as Markdown: machine, inputs, per-command table, ratios, memory scaling, targets."""
    settings = report["settings"]
    lines = ["## Machine", "", *(f"- {k}: {v}" for k, v in report["machine"].items())]
    lines += section(
        "Inputs",
        "llrrrr",
        ["case", "volume", "images", "pixels MB", "file MB", "pixels / file"],
        [input_cells(c) for c in report["cases"]],
    )
    cold = "cold: evicted before each run" if settings.get("cold", True) else "cold: not run (--no-cold)"
    lines += section(
        f"Results (scale {settings['scale']:g}, median of {settings['repeats']} runs; "
        f"hot: input in the page cache, {cold})",
        "llrrrrrrrrl",
        RESULTS_HEADER,
        [result_cells(c, hot, cold) for c in report["cases"] for hot, cold in commands(c)],
    )
    lines += ["", residency_note(report)]
    if any(c["case"] == BIG.name for c in report["cases"]):
        lines.append(f"{BIG.name} (--big) ran once, cold: its figures are of that one run.")
    lines += section(
        "Ratios (speed: how many times faster the first ran than the second)",
        "llrr",
        ["case", "ratio", "hot", "cold"],
        [[r["case"], r["ratio"], fmt(r["hot"], ".2f"), fmt(r["cold"], ".2f")] for r in report["ratios"]],
    )
    lines += section(
        "Memory scaling (tomotiff uint8 -j 2)",
        "lrrr",
        ["case", "peak RSS MB", "peak RSS MB, 2x images", "ratio"],
        [
            [s["case"], fmt(s["rss_mb"], ".0f"), fmt(s["rss_mb_doubled"], ".0f"), fmt(s["ratio"], ".2f")]
            for s in report["memory_scaling"]
        ],
    )
    lines += section(
        "Targets",
        "lrl",
        ["target", "value", "result"],
        [[t["target"], fmt(t["value"], ".2f"), t["result"]] for t in report["targets"]],
    )
    return "\n".join(lines)
