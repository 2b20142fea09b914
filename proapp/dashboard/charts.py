"""Small server-rendered SVG line charts (no script, no chart library): one per score, with the window dates.

``line_chart`` computes the geometry; ``templates/staff/_chart.html`` draws it (autoescaped, with presentation
attributes only, so the strict Content-Security-Policy holds)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

WIDTH, HEIGHT = 320, 140
LEFT, RIGHT, TOP, BOTTOM = 34, 10, 10, 30


@dataclass
class Chart:
    title: str
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    right: int = WIDTH - RIGHT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    ticks: list[tuple[float, str]] = field(default_factory=list)          # (y, label)
    points: list[tuple[float, float, str]] = field(default_factory=list)  # (x, y, tooltip)
    dates: list[tuple[float, str, str]] = field(default_factory=list)     # (x, anchor, label)

    @property
    def polyline(self) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y, _ in self.points)


def line_chart(points: Sequence[tuple[datetime, float, str]], *, low: float, high: float, title: str,
               date_format: Callable[[date], str], number_format: Callable[[float], str]) -> Chart:
    """``points``: (when, value, tooltip) in time order. ``date_format`` and ``number_format`` write a date and a
    number as the user reads them."""
    chart = Chart(title)
    top = max([high] + [v for _, v, _ in points])
    span_y = (top - low) or 1.0
    plot_w, plot_h = chart.right - chart.left, chart.bottom - chart.top
    times = [p[0].timestamp() for p in points]
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    span_t = (t1 - t0) or 1.0

    def x(t: float) -> float:
        return chart.left + (plot_w / 2 if t1 == t0 else (t - t0) / span_t * plot_w)

    def y(v: float) -> float:
        return chart.top + plot_h - (v - low) / span_y * plot_h

    chart.ticks = [(y(tick), number_format(tick)) for tick in (low, (low + top) / 2, top)]
    chart.points = [(x(t), y(v), tip) for t, (_, v, tip) in zip(times, points, strict=True)]
    if points:
        first, last = points[0][0].date(), points[-1][0].date()
        chart.dates.append((chart.left, "start", date_format(first)))
        if last != first:
            chart.dates.append((chart.right, "end", date_format(last)))
    return chart
