"""Server-side SVG charts as geometry: numbers and labels the templates draw (escaped like any text).

No JavaScript and no chart library: a chart is a handful of rects, polylines and text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 250, 48, 40, 28


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: float
    kind: str  # before | after


@dataclass(frozen=True)
class Group:
    label: str
    label_x: float
    bars: list[Bar]


@dataclass(frozen=True)
class Series:
    label: str
    color: str
    points: str  # "x,y x,y …" for a polyline
    dots: list[tuple[float, float, float]]  # (x, y, value)


@dataclass
class Chart:
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    y_ticks: list[tuple[float, str]] = field(default_factory=list)  # (y, label)
    x_labels: list[tuple[float, str]] = field(default_factory=list)  # (x, label)
    groups: list[Group] = field(default_factory=list)
    series: list[Series] = field(default_factory=list)


def _y(value: float, top_value: float) -> float:
    plot = HEIGHT - BOTTOM - TOP
    share = 0.0 if top_value <= 0 else max(0.0, min(value, top_value)) / top_value
    return round(HEIGHT - BOTTOM - share * plot, 2)


def _ticks(top_value: float, fmt: str) -> list[tuple[float, str]]:
    return [(_y(top_value * i / 4, top_value), format(top_value * i / 4, fmt)) for i in range(5)]


def before_after(before: Mapping[str, float], after: Mapping[str, float]) -> Chart:
    """Per-cluster grouped bars (scores 0–1): before beside after."""
    names = list(dict.fromkeys([*before, *after]))
    chart = Chart(y_ticks=_ticks(1.0, ".2f"))
    if not names:
        return chart
    slot = (WIDTH - LEFT - 8) / len(names)
    bar = min(48.0, slot * 0.35)
    for i, name in enumerate(names):
        x0 = LEFT + i * slot + (slot - 2 * bar) / 2
        bars = []
        for j, (kind, scores) in enumerate((("before", before), ("after", after))):
            if name not in scores:
                continue
            value = float(scores[name])
            y = _y(value, 1.0)
            height = round(HEIGHT - BOTTOM - y, 2)
            bars.append(Bar(round(x0 + j * bar, 2), y, round(bar, 2), height, value, kind))
        chart.groups.append(Group(name, round(x0 + bar, 2), bars))
    return chart


def lines(x_labels: Sequence[str], series: Mapping[str, Sequence[float | None]], *, top: float | None = None,
          fmt: str = ".2f") -> Chart:  # fmt: skip
    """One polyline per series over the same x positions (None: no point there)."""
    values = [v for vs in series.values() for v in vs if v is not None]
    top_value = top if top is not None else (max(values) * 1.1 if values and max(values) > 0 else 1.0)
    chart = Chart(y_ticks=_ticks(top_value, fmt))
    n = len(x_labels)
    step = (WIDTH - LEFT - 24) / max(n - 1, 1)
    xs = [round(LEFT + 12 + i * step, 2) for i in range(n)]
    chart.x_labels = list(zip(xs, x_labels, strict=True))
    for k, (label, vs) in enumerate(series.items()):
        dots = [(xs[i], _y(v, top_value), v) for i, v in enumerate(vs) if v is not None]
        chart.series.append(
            Series(label, PALETTE[k % len(PALETTE)], " ".join(f"{x},{y}" for x, y, _ in dots), dots)
        )
    return chart
