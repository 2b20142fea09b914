"""Small server-rendered SVG line charts (no script, no chart library): one per score, with the window dates.

Only presentation attributes are used (no ``style``), so the strict Content-Security-Policy holds."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from markupsafe import Markup, escape

WIDTH, HEIGHT = 320, 140
LEFT, RIGHT, TOP, BOTTOM = 34, 10, 10, 30


def _fmt(value: float) -> str:
    return f"{value:g}" if value == int(value) else f"{value:.2f}".rstrip("0")


def line_chart(points: Sequence[tuple[datetime, float, str]], *, low: float, high: float, title: str,
               date_format) -> Markup:
    """``points``: (when, value, tooltip) in time order. ``date_format`` turns a date into the user's text."""
    top = max([high] + [v for _, v, _ in points])
    span_y = (top - low) or 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    times = [p[0].timestamp() for p in points]
    t0, t1 = (min(times), max(times)) if times else (0.0, 1.0)
    span_t = (t1 - t0) or 1.0

    def x(t: float) -> float:
        return LEFT + (plot_w / 2 if t1 == t0 else (t - t0) / span_t * plot_w)

    def y(v: float) -> float:
        return TOP + plot_h - (v - low) / span_y * plot_h

    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" role="img" '
             f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#767676"/>',
             f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}" stroke="#767676"/>']
    for tick in (low, (low + top) / 2, top):
        ty = y(tick)
        parts.append(f'<text x="{LEFT - 4}" y="{ty + 4:.1f}" text-anchor="end" font-size="11" fill="#1a1a1a">'
                     f'{_fmt(tick)}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{ty:.1f}" x2="{WIDTH - RIGHT}" y2="{ty:.1f}" stroke="#e0e0e0"/>')
    if points:
        coords = [(x(t), y(v)) for t, (_, v, _) in zip(times, points, strict=True)]
        if len(coords) > 1:
            path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
            parts.append(f'<polyline points="{path}" fill="none" stroke="#0a58ca" stroke-width="2"/>')
        for (cx, cy), (_, _, tip) in zip(coords, points, strict=True):
            parts.append(f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="4" fill="#0a58ca"><title>{escape(tip)}</title>'
                         f'</circle>')
        first, last = points[0][0].date(), points[-1][0].date()
        parts.append(_date_label(LEFT, "start", first, date_format))
        if last != first:
            parts.append(_date_label(WIDTH - RIGHT, "end", last, date_format))
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704  (every text above went through escape())


def _date_label(px: float, anchor: str, day: date, date_format) -> str:
    return (f'<text x="{px}" y="{HEIGHT - 8}" text-anchor="{anchor}" font-size="11" fill="#1a1a1a">'
            f"{escape(date_format(day))}</text>")
