"""Small inline SVG charts for printed reports: no script, no external file, readable in black
and white (values are also in the tables beside them)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

WIDTH, HEIGHT = 640, 170
LEFT, BOTTOM, TOP = 40, 22, 10


def bar_chart(
    bars: Sequence[tuple[str, float | None]],
    *,
    label: str,
    top: float,
    reference: float | None = None,
    reference_label: str = "",
    unit: str = "",
) -> str:
    """Bars (x label, value or None) from 0 to `top`, with an optional dashed reference line
    (the required cameras, say). `label` names the chart for screen readers."""
    top = top if top > 0 else 1.0
    plot_w, plot_h = WIDTH - LEFT - 6, HEIGHT - BOTTOM - TOP
    n = max(len(bars), 1)
    step = plot_w / n
    width = max(step * 0.7, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
        f"<title>{escape(label)}</title>",
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - 6}" y2="{TOP + plot_h}" '
        'class="axis"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h - plot_h * fraction
        parts.append(
            f'<text x="{LEFT - 4}" y="{y + 4:.1f}" class="tick" text-anchor="end">'
            f"{_short(top * fraction)}{escape(unit)}</text>"
        )
    every = max(1, round(n / 8))  # at most ~8 x labels
    for i, (x_label, value) in enumerate(bars):
        x = LEFT + i * step + (step - width) / 2
        if value is not None:
            h = plot_h * min(max(value, 0.0), top) / top
            parts.append(
                f'<rect x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{width:.1f}" '
                f'height="{h:.1f}" class="bar"><title>{escape(x_label)}: '
                f"{_short(value)}{escape(unit)}</title></rect>"
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + width / 2:.1f}" y="{HEIGHT - 6}" class="tick" '
                f'text-anchor="middle">{escape(x_label)}</text>'
            )
    if reference is not None:
        y = TOP + plot_h - plot_h * min(reference, top) / top
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - 6}" y2="{y:.1f}" class="reference"/>'
            f'<text x="{WIDTH - 8}" y="{y - 4:.1f}" class="tick" text-anchor="end">'
            f"{escape(reference_label)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _short(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) or abs(value) >= 10 else f"{value:.1f}"
