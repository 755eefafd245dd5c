"""Render ``report.html``: one self-contained file (inline CSS and SVG, no script, no network).

The page is built from ``report.json`` and ``monitor.jsonl`` only, so re-rendering the same
report gives the same bytes (its sha256 in the report stays meaningful).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

from pytest_cutover.redact import redact
from pytest_cutover.report.charts import Series, line_chart, load_monitor, monitor_series
from pytest_cutover.report.checklist import summary
from pytest_cutover.stages import STAGE_HELP, STAGES

__all__ = ["figure_summary", "issue_fix", "render_html", "row_anchor", "stage_gantt"]

_TILE_ORDER = ("points", "rows", "total", "migrated", "verified", "rejected", "missing", "bit_exact", "recall_at_10",
               "verify_failed", "rows_without_data")
_COLOURS = {"passed": "#1a7f37", "failed": "#cf222e", "blocked": "#bf8700", "partial": "#bf8700",
            "interrupted": "#bf8700", "not-run": "#8c959f"}


def _ts(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _clock(value: str | None) -> str:
    """``HH:MM:SS`` of an ISO timestamp (UTC), or an en dash."""
    if not value:
        return "–"
    return value[11:19] if len(value) >= 19 else value


def _duration(seconds: Any) -> str:
    if not isinstance(seconds, int | float):
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def stage_gantt(history: Sequence[Mapping[str, Any]], width: int = 1100) -> str:
    """Every stage attempt of the run as a bar on one time axis (superseded attempts faded)."""
    spans = [(h, _ts(h.get("start")), _ts(h.get("end"))) for h in history]
    spans = [(h, s, e) for h, s, e in spans if s is not None and e is not None]
    if not spans:
        return ""
    t0 = min(s for _, s, _ in spans)
    t1 = max(e for _, _, e in spans)
    total = max(t1 - t0, 1e-6)
    row_h, left, right = 24, 96, 16
    height = row_h * len(STAGES) + 34
    plot = width - left - right
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="gantt" role="img" '
           f'aria-label="stage timeline">']
    for i, stage in enumerate(STAGES):
        y = 6 + i * row_h
        out.append(f'<text x="{left - 8}" y="{y + 15}" class="gantt-label" text-anchor="end">{stage}</text>'
                   f'<line x1="{left}" x2="{left + plot}" y1="{y + row_h - 2}" y2="{y + row_h - 2}" class="grid"/>')
    for h, start, end in spans:
        i = STAGES.index(h["stage"])
        x = left + plot * (start - t0) / total
        w = max(plot * (end - start) / total, 3)
        colour = _COLOURS.get(h.get("verdict") or "", "#8c959f")
        opacity = "1" if h.get("effective") else "0.35"
        title = escape(f"{h['stage']} {h.get('verdict')} {_clock(h.get('start'))}–{_clock(h.get('end'))}"
                       + (" (superseded)" if not h.get("effective") else "")
                       + (f" forced: {h.get('forced')}" if h.get("forced") else ""))
        out.append(f'<rect x="{x:.1f}" y="{6 + i * row_h + 3}" width="{w:.1f}" height="{row_h - 8}" rx="3" '
                   f'fill="{colour}" fill-opacity="{opacity}"><title>{title}</title></rect>')
    y_axis = 6 + len(STAGES) * row_h + 16
    out.append(f'<text x="{left}" y="{y_axis}" class="tick">{_clock(_iso(t0))} UTC</text>'
               f'<text x="{left + plot}" y="{y_axis}" class="tick" text-anchor="end">{_clock(_iso(t1))} UTC · '
               f'{escape(_duration(t1 - t0))}</text></svg>')
    return "".join(out)


def _window(start: str | None, end: str | None) -> str:
    """``17:41:32 → 18:41:32 UTC (1 h 00 min)``; the date is shown once when both are the same day."""
    a, b = _ts(start), _ts(end)
    if a is None or b is None:
        return "–"
    first = start[:10] + " " + _clock(start) if start[:10] != (end or "")[:10] else _clock(start)
    last = (end[:10] + " " if start[:10] != end[:10] else "") + _clock(end)
    return f"{first} → {last} UTC ({_duration(b - a)})"


def _iso(ts: float) -> str:
    from pytest_cutover.ledger import iso_utc

    return iso_utc(ts)


def _monitor_charts(report: Mapping[str, Any], monitor_path: Path | None) -> tuple[list[str], int, int]:
    if monitor_path is None:
        return [], 0, 0
    data = load_monitor(monitor_path)
    samples, bad = data.samples, data.bad_lines
    series = monitor_series(samples)
    th = report.get("thresholds") or {}
    specs: list[tuple[str, str, str, bool, list[tuple[float, str, str]]]] = [
        ("error_rate", "Error rate", "", True,
         [(float(th["rollback_error_rate"]), f"rollback {th['rollback_error_rate'] * 100:g}%", "#cf222e")]
         if "rollback_error_rate" in th else []),
        ("p95_ms", "Search latency p95", " ms", False,
         [(float(th["search_p95_ms"]), f"limit {th['search_p95_ms']:g} ms", "#bf8700")]
         if "search_p95_ms" in th else []),
        ("memory_mb", "App memory (RSS)", " MB", False, []),
    ]
    if "error_rate" in th and specs[0][4] is not None:
        specs[0][4].append((float(th["error_rate"]), f"target {th['error_rate'] * 100:g}%", "#bf8700"))
    charts = []
    for name, title, unit, percent, limits in specs:
        s: Series | None = series.get(name)
        if s is None:
            continue
        charts.append(line_chart(s, title=f"{title} ({s.key})", unit=unit, percent=percent, limits=limits,
                                 marks=data.marks))
    return charts, len(samples), bad


def _accounting(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Stacked-bar data for the migration sections (vectors, blobs)."""
    out = []
    for section in ("vectors", "blobs"):
        fig = figures.get(section)
        if not isinstance(fig, Mapping):
            continue
        total = fig.get("points", fig.get("total", fig.get("rows")))
        bar = []
        if isinstance(total, int) and total > 0:
            for key, colour in (("migrated", "#1a7f37"), ("rejected", "#cf222e")):
                value = fig.get(key)
                if isinstance(value, int) and value > 0:
                    bar.append({"key": key, "value": value, "pct": 100 * value / total, "colour": colour})
        numbers = {k: v for k, v in fig.items() if isinstance(v, int | float) and not isinstance(v, bool)}
        # The accounting itself as big tiles; the engine's operational figures (timings, batches) as a table.
        tiles = [{"key": k, "value": numbers[k]} for k in _TILE_ORDER if k in numbers]
        extra = {k: _human(k, v) for k, v in sorted(numbers.items()) if k not in _TILE_ORDER}
        details = {k: v for k, v in fig.items() if isinstance(v, Mapping | list) and v}
        out.append({"section": section, "total": total, "bar": bar, "tiles": tiles, "extra": extra,
                    "details": details})
    return out


_ISSUE_RANK = ("trigger", "failure", "blocked", "forced", "skip", "waived")


def _issue_kind(issue: str) -> str:
    """A CSS class for one issue line (the lines are written by ``build.py`` in these shapes)."""
    if issue.startswith(("rollback trigger", "rollback step")):
        return "trigger"
    if "skipped, waived:" in issue:
        return "waived"
    if "skipped without a waiver" in issue:
        return "skip"
    if "forced over a gate" in issue:
        return "forced"
    if ": blocked - " in issue:
        return "blocked"
    return "failure"


_MONITOR_HEADLINE = ("error_rate", "log_error_rate", "search_p95_ms", "rls_leaks", "db_connection_failures",
                     "memory_slope_mib_per_min", "samples", "elapsed_s")


def _monitor_tiles(fig: Any) -> dict[str, Any]:
    """The monitor's headline figures as tiles, the other scalars as a table."""
    if not isinstance(fig, Mapping):
        return {"tiles": [], "extra": {}}
    scalars = {k: v for k, v in fig.items() if isinstance(v, int | float | str) and not isinstance(v, bool)}
    tiles = [{"key": k, "value": _human(k, scalars[k]) if not isinstance(scalars[k], str) else scalars[k]}
             for k in _MONITOR_HEADLINE if k in scalars]
    extra = {k: (_human(k, v) if not isinstance(v, str) else v) for k, v in sorted(scalars.items())
             if k not in _MONITOR_HEADLINE}
    return {"tiles": tiles, "extra": extra}


def _human(key: str, value: float) -> str:
    """A figure as a person reads it: bytes in MiB, seconds with a unit."""
    if key.endswith("bytes") and value >= 1024:
        return f"{value / 1048576:.1f} MiB"
    if key.endswith("_s") and not key.endswith("per_s"):
        return _duration(value)
    if "rate" in key and 0 <= value <= 1 and not key.endswith("per_s"):
        return f"{value * 100:.2f}%"
    return _value(value)


def _flatten(values: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(_flatten(value, name + "."))
        else:
            out.append((name, value))
    return out


_SUMMARY_ROWS, _MATRIX_COLUMNS = 8, 6
_OPEN_RANK = {"failed": 0, "unmapped": 1, "not-run": 2, "needs a person": 3, "pending": 4}


def figure_summary(section: str, values: Any) -> dict[str, Any]:
    """One figure section as a small table (a matrix when its groups share a few keys), with every raw value.

    ``parity`` (a mapping per table) becomes table x {old_rows, new_rows, ok...}; a long flat section
    (``rls``: ~200 dotted keys) shows its plain values and one row per group; the raw values stay behind a
    disclosure element in the page.
    """
    if not isinstance(values, Mapping):
        return {"section": section, "count": 1, "columns": [], "rows": [{"key": section, "value": _value(values)}],
                "more": 0, "raw": [(section, _value(values))], "key_label": ""}
    flat = _flatten(values)
    raw = [(k, _value(v)) for k, v in flat]
    groups: dict[str, dict[str, Any]] = {}
    for key, value in flat:
        head, _, rest = key.partition(".")
        groups.setdefault(head, {})[rest] = value
    columns = sorted({c for g in groups.values() for c in g if c})
    matrix = len(groups) > 1 and all("" not in g for g in groups.values()) and len(columns) <= _MATRIX_COLUMNS
    if matrix:
        rows = [{"key": head, "values": [_value(g[c]) if c in g else "–" for c in columns]}
                for head, g in groups.items()]
        return {"section": section, "count": len(flat), "columns": columns, "rows": rows[:_SUMMARY_ROWS * 2],
                "more": max(len(rows) - _SUMMARY_ROWS * 2, 0), "raw": raw, "key_label": ""}
    rows = []
    for head, g in groups.items():
        if list(g) == [""]:
            rows.append({"key": head, "value": _value(g[""])})
        else:
            falses = [k for k, v in g.items() if v is False]
            rows.append({"key": head, "value": f"{len(g)} values" + (f", {len(falses)} false" if falses else "")})
    return {"section": section, "count": len(flat), "columns": [], "rows": rows[:_SUMMARY_ROWS],
            "more": max(len(rows) - _SUMMARY_ROWS, 0), "raw": raw, "key_label": ""}


_FIXES = {
    "trigger": "roll back now (the runbook's Quick Rollback; `cutover action rollback`), keep the target intact, "
               "then investigate the evidence",
    "failure": "fix what the message says, then re-run the stage: `pytest -m {stage}` (later stages re-run after it)",
    "blocked": "an earlier stage did not pass: make it pass first, then run `pytest -m {stage}`",
    "forced": "a gate was overridden: the lead must accept the stated reason, or re-run the stage without --force",
    "skip": "provide what the skip reason names in cutover.toml, or waive it: [waivers] KEY = \"why\"",
    "waived": "accepted by a waiver: nothing to do unless the waiver is wrong",
}


def issue_fix(issue: str) -> str:
    """What to do about one issue line (a hint derived from its kind and stage)."""
    kind = _issue_kind(issue)
    if "partial, does not count" in issue or "interrupted, does not count" in issue:
        return "run the whole stage again without -k/--deselect/-m filters: `pytest -m {}`".format(
            issue.split(":", 1)[0])
    if "different configs" in issue or "built with config" in issue:
        return "rebuild with the config the stages ran with (`cutover report --config PATH`), or re-run the stages"
    if "different suite revisions" in issue:
        return "re-run the stages from one revision of the suite"
    if issue.startswith("notification "):
        return "check the channel, resend with `cutover notify EVENT --channel NAME`, or tell the people by hand"
    stage = issue.split(":", 1)[0] if ":" in issue else "STAGE"
    return _FIXES[kind].replace("{stage}", stage)


def soft_breaks(name: Any) -> Any:
    """An identifier (``attachments_without_content``, ``tls.api.days_left``) that may wrap after ``_`` and ``.``
    rather than inside a word."""
    from markupsafe import Markup, escape

    return Markup(str(escape(str(name))).replace("_", "_<wbr>").replace(".", ".<wbr>"))


def row_anchor(test_id: str) -> str:
    """The page anchor of one test's row (the checklist links each line's evidence to it)."""
    import hashlib

    return "t-" + hashlib.sha256(str(test_id).encode()).hexdigest()[:12]


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, Mapping | list):
        import json

        return json.dumps(value, sort_keys=True, default=str)
    return str(value)


@functools.cache
def _environment() -> Any:
    """The jinja2 environment, built once per process (compiling the template costs ~0.4 s)."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_cutover.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"], default_for_string=True, default=True),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(clock=_clock, duration=_duration, value=_value, issue_kind=_issue_kind, anchor=row_anchor,
                       soft=soft_breaks,
                       issue_fix=issue_fix)
    return env


def render_html(report: Mapping[str, Any], *, monitor_path: Path | None = None) -> str:
    """The report page as one HTML string (redacted)."""
    env = _environment()
    charts, n_samples, bad_samples = _monitor_charts(report, monitor_path)
    checklist = report.get("checklist") or []
    sections: dict[str, list[Mapping[str, Any]]] = {}
    for item in checklist:
        sections.setdefault(item["section"], []).append(item)
    html = env.get_template("report.html.j2").render(
        r=report,
        stage_help=STAGE_HELP,
        colours=_COLOURS,
        gantt=stage_gantt(report.get("history") or []),
        charts=charts,
        n_samples=n_samples,
        bad_samples=bad_samples,
        accounting=_accounting(report.get("figures") or {}),
        checklist_sections=sections,
        lines=summary(checklist),
        # Failed lines first, then what the suite should still do, then what waits for a person or for Week 1.
        open_lines=sorted((i for i in checklist if i.get("state") == "open"),
                          key=lambda i: _OPEN_RANK.get(i.get("problem") or "", len(_OPEN_RANK))),
        # Rollback triggers first: they decide the status; then failures, blocks, forced gates, skips, waivers.
        issues_first=sorted(report.get("issues") or [], key=lambda i: _ISSUE_RANK.index(_issue_kind(i))),
        monitor_tiles=_monitor_tiles((report.get("figures") or {}).get("monitor")),
        surface=(report.get("figures") or {}).get("surface"),
        other_figures=[figure_summary(k, v) for k, v in (report.get("figures") or {}).items()
                       if k not in ("vectors", "blobs", "monitor", "surface")],
        window=_window(report.get("started"), report.get("finished")),
        passed_stages=sum(1 for s in report.get("stages") or [] if s.get("verdict") == "passed"),
    )
    return redact(html)
