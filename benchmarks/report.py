"""From measured rows to the report: ratios, memory scaling, targets, Markdown and JSON.

Pure functions of the results, so they can be checked on hand-made ones. A row without
figures (not available, failed) makes every ratio and target that needs it n/a and N/A.
"""

from __future__ import annotations

from measure import MB, CaseResult

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

SPEED_TARGETS = (  # (case, faster row, slower row, minimum speed ratio, name)
    ("A", "tomotiff-u8-j2", "naive-u8", 5.0, "A uint8 >= 5x naive"),
    ("B", "tomotiff-u8-j2", "naive-u8", 1.5, "B uint8 -j 2 >= 1.5x naive"),
    ("B", "tomotiff-u8-j2", "tomotiff-u8-j1", 1.5, "B uint8 -j 2 >= 1.5x -j 1"),
    ("B", "tomotiff-u8-j2", "ceiling-u8", 0.6, "B uint8 -j 2 >= 60% of ceiling"),
    ("B", "tomotiff-fp-j2", "ceiling-fp", 0.7, "B float32 >= 70% of ceiling"),
    ("C", "tomotiff-u8-j2", "naive-u8", 2.0, "C uint8 >= 2x naive"),
    ("D", "tomotiff-u8-j2", "naive-u8", 1.3, "D uint8 >= 1.3x naive"),
)


def speed_ratio(case: CaseResult, faster: str, slower: str) -> float | None:
    """How many times faster `faster` ran than `slower`; None if either has no measurement."""
    fast, slow = case.row(faster), case.row(slower)
    if fast is None or slow is None or fast.median_s is None or slow.median_s is None:
        return None
    return slow.median_s / fast.median_s


def workers_ratio_after_startup(case: CaseResult) -> float | None:
    """2 workers / 1 worker on the work alone: both medians less the first-image-only run's.
    A diagnostic, not a target: it shows how much of the whole commands' ratio the fixed start-up takes."""
    times = [case.row(key).median_s for key in ("tomotiff-u8-j2", "tomotiff-u8-j1", "tomotiff-u8-start")]
    if None in times or times[0] <= times[2]:
        return None
    two, one, start = times
    return (one - start) / (two - start)


def ratios(results: list[CaseResult]) -> list[dict]:
    """Every RATIOS pair present in a case, measured or not, so missing tools show as n/a."""
    pairs = [
        {"case": c.name, "ratio": name, "value": speed_ratio(c, faster, slower)}
        for c in results
        for faster, slower, name in RATIOS
        if c.row(faster) and c.row(slower)
    ]
    after_startup = [
        {
            "case": c.name,
            "ratio": "tomotiff uint8: 2 workers / 1 worker, start-up excluded",
            "value": workers_ratio_after_startup(c),
        }
        for c in results
        if c.row("tomotiff-u8-start")
    ]
    return pairs + after_startup


def memory_scaling(results: list[CaseResult]) -> list[dict]:
    """Peak RSS of tomotiff on twice the images (case "<name>-2x") over its peak RSS on the base volume."""
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
    for case, faster, slower, minimum, name in SPEED_TARGETS:
        if case in by_name:
            value = speed_ratio(by_name[case], faster, slower)
            out.append({"target": name, "value": value, "result": verdict(None if value is None else value >= minimum)})
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


def case_json(case: CaseResult) -> dict:
    """Everything measured, including each run's time and RSS, for comparing runs later."""
    return {
        "case": case.name,
        "description": case.description,
        "images": case.images,
        "input_bytes": case.input_bytes,
        "rows": [
            {
                "key": r.key,
                "label": r.label,
                "argv": r.argv,
                "status": r.status,
                "images": r.images or case.images,
                "times_s": r.times,
                "median_s": r.median_s,
                "peak_rss_mb": r.peak_rss_mb,
                "rss_mb": [k * 1024 / MB for k in r.rss_kib],
                "user_s": r.user_s,
                "sys_s": r.sys_s,
                "median_user_s": r.median_of(r.user_s),
                "median_sys_s": r.median_of(r.sys_s),
                "mb_per_s": case.input_bytes * (r.images or case.images) / case.images / MB / r.median_s
                if r.median_s
                else None,
            }
            for r in case.rows
        ],
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


RESULTS_HEADER = ["case", "command", "images", "median s", "MB/s (input)", "user s", "sys s", "peak RSS MB", "status"]


def line(cells: list[str]) -> str:
    return f"| {' | '.join(cells)} |"


def section(title: str, align: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """A heading and its table; `align` has one letter per column: l for text, r for numbers."""
    rule = ["---" if a == "l" else "---:" for a in align]
    return ["", f"## {title}", "", line(header), line(rule), *map(line, rows)]


def result_cells(case: dict, row: dict) -> list[str]:
    return [
        case["case"],
        row["label"],
        str(row["images"]),
        fmt(row["median_s"], ".2f"),
        fmt(row["mb_per_s"], ".0f"),
        fmt(row["median_user_s"], ".2f"),
        fmt(row["median_sys_s"], ".2f"),
        fmt(row["peak_rss_mb"], ".0f"),
        row["status"],
    ]


def markdown(report: dict) -> str:
    """The report as Markdown: machine, per-command table, ratios, memory scaling, targets."""
    settings = report["settings"]
    lines = ["## Machine", "", *(f"- {k}: {v}" for k, v in report["machine"].items())]
    lines += section(
        f"Results (scale {settings['scale']:g}, median of {settings['repeats']} runs, input warm in page cache)",
        "llrrrrrrl",
        RESULTS_HEADER,
        [result_cells(c, r) for c in report["cases"] for r in c["rows"]],
    )
    lines += section(
        "Ratios (speed: how many times faster the first ran than the second)",
        "llr",
        ["case", "ratio", "value"],
        [[r["case"], r["ratio"], fmt(r["value"], ".2f")] for r in report["ratios"]],
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
