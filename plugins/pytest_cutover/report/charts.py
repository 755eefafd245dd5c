"""Monitor charts as inline SVG: error rate, p95 latency and memory over the window.

``reports/<run>/monitor.jsonl`` holds one JSON sample a line; the monitor may nest values
(``{"probes": {"search": {"p95_ms": 12}}}``), so samples are flattened to dotted keys and
each chart takes the first key that names its series.  No JavaScript, no network: the
SVG is part of the one self-contained HTML file.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

__all__ = ["MonitorData", "Series", "line_chart", "load_monitor", "load_samples", "monitor_series"]

_TIME_KEYS = ("elapsed_s", "elapsed", "t", "offset_s")
_STAMP_KEYS = ("ts", "time", "at", "timestamp")
# chart -> (preferred exact keys, fallback substrings, unit)
_SERIES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "error_rate": (("error_rate", "errors.rate", "probe_error_rate", "http.error_rate"), ("error_rate",)),
    "p95_ms": (("search_p95_ms", "vector_search.p95_ms", "search.p95_ms", "latency.search.p95_ms", "p95_ms",
                "latency_p95_ms"), ("search_p95", "search.p95", "p95")),
    "memory_mb": (("rss_mb", "memory_mb", "app.rss_mb", "memory.rss_mb", "rss_bytes", "memory_bytes", "rss"),
                  ("rss", "memory")),
}


@dataclass
class Series:
    """One chart's points: seconds since the first sample, and the value."""

    name: str
    key: str
    points: list[tuple[float, float]]


def _flatten(obj: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in obj.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def _percentile(values: Sequence[float], pct: float) -> float | None:
    """Nearest-rank percentile (the monitor's definition)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(pct / 100 * len(ordered)) - 1)]


def _derive(sample: dict[str, Any]) -> dict[str, Any]:
    """Per-sample error rate and search p95 from the monitor's probe results, when it recorded probes."""
    probes = [p for p in sample.get("probes") or [] if isinstance(p, Mapping)]
    if probes:
        sample.setdefault("error_rate", sum(not p.get("ok") for p in probes) / len(probes))
        search = [float(p["latency_ms"]) for p in probes
                  if p.get("kind") == "search" and p.get("ok") and isinstance(p.get("latency_ms"), int | float)]
        p95 = _percentile(search, 95)
        if p95 is not None:
            sample.setdefault("search_p95_ms", p95)
    return sample


@dataclass
class MonitorData:
    """What the charts need from ``monitor.jsonl``."""

    samples: list[dict[str, Any]]
    bad_lines: int
    marks: list[tuple[float, str]]  # (seconds into the window, trigger name)


def load_monitor(path: Path) -> MonitorData:
    """Samples and trigger marks of the latest window; a trigger is placed at the sample before it."""
    records, bad = _read(path)
    windows = [r["window"] for r in records if isinstance(r.get("window"), int)]
    if windows:
        records = [r for r in records if r.get("window") == windows[-1]]
    samples: list[dict[str, Any]] = []
    fired: list[tuple[int, str]] = []
    for record in records:
        kind = record.get("kind", "sample")
        if kind == "sample":
            samples.append(_flatten(_derive(record)))
        elif kind == "trigger" and samples:
            fired.append((len(samples) - 1, str(record.get("name") or "trigger")))
    xs = _seconds(samples) if samples else []
    return MonitorData(samples, bad, [(xs[i], name) for i, name in fired])


def load_samples(path: Path) -> tuple[list[dict[str, Any]], int]:
    """The samples of ``monitor.jsonl`` (flattened) and how many lines could not be read.

    The monitor writes ``window``/``sample``/``trigger``/``end`` records; only samples of the
    latest window are charted (a resumed window keeps its number, a new window restarts the clock).
    """
    data = load_monitor(path)
    return data.samples, data.bad_lines


def _read(path: Path) -> tuple[list[dict[str, Any]], int]:
    samples: list[dict[str, Any]] = []
    bad = 0
    if not path.exists():
        return samples, bad
    for line in path.read_text("utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(sample, dict):
            samples.append(sample)
        else:
            bad += 1
    return samples, bad


def _seconds(samples: Sequence[Mapping[str, Any]]) -> list[float | None]:
    for key in _TIME_KEYS:
        if all(isinstance(s.get(key), int | float) for s in samples):
            return [float(s[key]) for s in samples]
    for key in _STAMP_KEYS:
        stamps = []
        for s in samples:
            try:
                stamps.append(datetime.fromisoformat(str(s.get(key)).replace("Z", "+00:00")).timestamp())
            except ValueError:
                break
        if len(stamps) == len(samples) and stamps:
            return [t - stamps[0] for t in stamps]
    return [float(i) for i in range(len(samples))]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _pick_key(samples: Sequence[Mapping[str, Any]], exact: Iterable[str], fuzzy: Iterable[str]) -> str | None:
    keys = [k for s in samples for k in s if _number(s[k]) is not None]
    for key in exact:
        if key in keys:
            return key
    for part in fuzzy:
        for key in keys:
            if part in key:
                return key
    return None


def monitor_series(samples: Sequence[Mapping[str, Any]]) -> dict[str, Series]:
    """The three charted series found in ``samples`` (absent ones are left out)."""
    if not samples:
        return {}
    xs = _seconds(samples)
    found: dict[str, Series] = {}
    for name, (exact, fuzzy) in _SERIES.items():
        key = _pick_key(samples, exact, fuzzy)
        if key is None:
            continue
        points = [(x, v) for x, s in zip(xs, samples, strict=True)
                  if x is not None and (v := _number(s.get(key))) is not None]
        in_bytes = key.endswith("bytes") or (key == "rss" and points and max(p[1] for p in points) > 1e6)
        if name == "memory_mb" and in_bytes:
            points = [(x, v / 1048576) for x, v in points]
        found[name] = Series(name, key, points)
    return found


def _nice_step(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value``."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * 10**exponent >= value:
            return step * 10**exponent
    return 10.0 ** (exponent + 1)  # pragma: no cover


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.3g}%"
    return f"{value:.4g}"


def _duration(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def line_chart(series: Series, *, title: str, unit: str = "", percent: bool = False,
               limits: Sequence[tuple[float, str, str]] = (), marks: Sequence[tuple[float, str]] = (),
               width: int = 380, height: int = 210) -> str:
    """An SVG line chart of ``series`` with horizontal limit lines ``(value, label, css colour)``."""
    left, right, top, bottom = 52, 12, 44, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    pts = series.points
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" class="chart" role="img" '
            f'aria-label="{escape(title)}"><text x="{left}" y="17" class="chart-title">{escape(title)}</text>')
    if not pts:
        return head + f'<text x="{width / 2}" y="{height / 2}" class="chart-empty">no samples</text></svg>'
    x_max = max(p[0] for p in pts) or 1.0
    y_max = max([p[1] for p in pts] + [lim[0] for lim in limits]) * 1.05
    step = _nice_step(y_max / 4)
    ticks = max(1, math.ceil(y_max / step))
    y_top = step * ticks

    def sx(x: float) -> float:
        return left + plot_w * (x / x_max)

    def sy(y: float) -> float:
        return top + plot_h * (1 - y / y_top)

    parts = [head]
    for i in range(ticks + 1):
        y = step * i
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" class="tick" text-anchor="end">'
                     f'{escape(_fmt(y, percent))}{"" if percent else escape(unit)}</text>')
    parts.append(f'<text x="{left}" y="{height - 8}" class="tick">0</text>'
                 f'<text x="{left + plot_w}" y="{height - 8}" class="tick" text-anchor="end">'
                 f'{escape(_duration(x_max))}</text>')
    for i, (value, label, colour) in enumerate(limits):
        # Alternate label ends so two close limits (5% rollback, 1% target) do not overprint.
        lx, anchor = (left + plot_w - 2, "end") if i % 2 == 0 else (left + 4, "start")
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(value):.1f}" y2="{sy(value):.1f}" '
                     f'stroke="{colour}" class="limit"/><text x="{lx}" y="{sy(value) - 4:.1f}" '
                     f'fill="{colour}" class="limit-label" text-anchor="{anchor}">{escape(label)}</text>')
    for x, name in marks:
        if 0 <= x <= x_max:
            parts.append(f'<line x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{top}" y2="{top + plot_h}" class="mark-line"/>'
                         f'<text x="{sx(x) - 3:.1f}" y="{top + 10}" class="mark-label" text-anchor="end">'
                         f'{escape(name)}</text>')
    path = " ".join(f"{'M' if i == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}" for i, (x, y) in enumerate(pts))
    area = f"{path} L{sx(pts[-1][0]):.1f},{sy(0):.1f} L{sx(pts[0][0]):.1f},{sy(0):.1f} Z"
    breach = any(v > lim[0] for _, v in pts for lim in limits)
    cls = "series breach" if breach else "series"
    parts.append(f'<path d="{area}" class="{cls}-area"/><path d="{path}" class="{cls}"/>')
    last_x, last_y = pts[-1]
    parts.append(f'<circle cx="{sx(last_x):.1f}" cy="{sy(last_y):.1f}" r="3" class="{cls}-dot"/>')
    peak = max(v for _, v in pts)
    parts.append(f'<text x="{left}" y="32" class="chart-peak">peak '
                 f'{escape(_fmt(peak, percent))}{"" if percent else escape(unit)} · last '
                 f'{escape(_fmt(last_y, percent))}{"" if percent else escape(unit)}</text></svg>')
    return "".join(parts)
