"""Charts as inline SVG, drawn on the server: no script, no CDN, fine on an offline machine.

Each function takes (label, value) pairs and returns the `<svg>` markup; every bar or point carries
its label and value in a `<title>` (a tooltip) and in data- attributes (tests read them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 56
Format = Callable[[float], str]


def percent(value: float) -> str:
    return f"{value:.0%}"


def count(value: float) -> str:
    return f"{value:g}"


def _svg(testid: str, title: str, body: list[str], height: int = HEIGHT) -> Markup:
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" data-testid="{escape(testid)}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>"
    )
    return Markup(head + "".join(body) + "</svg>")


def _axis(top: float, ymax: float, fmt: Format) -> list[str]:
    """Horizontal grid lines at 0, half and the top, labelled."""
    out = []
    plot_h = HEIGHT - TOP - BOTTOM
    for fraction in (0.0, 0.5, 1.0):
        y = TOP + plot_h * (1 - fraction)
        out.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        out.append(
            f'<text class="axis" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(ymax * fraction))}</text>"
        )
    return out


def _label(x: float, text: str, n: int) -> str:
    short = text if len(text) <= 14 else text[:13] + "…"
    if n > 8:  # many bars: slanted labels so they do not overlap
        y = HEIGHT - BOTTOM + 12
        return (
            f'<text class="label" x="{x:.1f}" y="{y}" text-anchor="end" '
            f'transform="rotate(-40 {x:.1f} {y})">{escape(short)}</text>'
        )
    y = HEIGHT - BOTTOM + 16
    return f'<text class="label" x="{x:.1f}" y="{y}" text-anchor="middle">{escape(short)}</text>'


def bars(
    data: Sequence[tuple[str, float]],
    *,
    testid: str,
    title: str,
    fmt: Format = count,
    ymax: float | None = None,
) -> Markup:
    """Vertical bars, one per label, left to right."""
    top = ymax if ymax is not None else max([v for _, v in data] + [1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(data), 1)
    body = _axis(TOP, top, fmt)
    for i, (label, value) in enumerate(data):
        h = plot_h * (value / top if top else 0)
        x = LEFT + i * slot + slot * 0.15
        tip = f"{label}: {fmt(value)}"
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{TOP + plot_h - h:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{h:.1f}" data-label="{escape(label)}" data-value="{value:g}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        body.append(_label(x + slot * 0.35, label, len(data)))
    return _svg(testid, title, body)


def line(
    data: Sequence[tuple[str, float]],
    *,
    testid: str,
    title: str,
    fmt: Format = count,
    ymax: float | None = None,
) -> Markup:
    """A line through the points, left to right, each point marked."""
    top = ymax if ymax is not None else max([v for _, v in data] + [1])
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(data) - 1, 1)
    points = [
        (LEFT + (i * step if len(data) > 1 else plot_w / 2), TOP + plot_h * (1 - (v / top if top else 0)))
        for i, (_, v) in enumerate(data)
    ]
    body = _axis(TOP, top, fmt)
    if len(points) > 1:
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline class="series" points="{path}"/>')
    for (x, y), (label, value) in zip(points, data, strict=True):
        tip = f"{label}: {fmt(value)}"
        body.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4" data-label="{escape(label)}" '
            f'data-value="{value:g}"><title>{escape(tip)}</title></circle>'
        )
    every = max(1, len(data) // 8)  # a label on every few points when there are many
    for i, ((x, _), (label, _)) in enumerate(zip(points, data, strict=True)):
        if i % every == 0 or i == len(data) - 1:
            body.append(_label(x, label, min(len(data), 9)))
    return _svg(testid, title, body)


def hbars(data: Sequence[tuple[str, float]], *, testid: str, title: str, fmt: Format = count) -> Markup:
    """Horizontal bars with long labels (questions) above each bar, top to bottom."""
    row = 34
    height = TOP + row * max(len(data), 1) + 8
    top = max([v for _, v in data] + [1])
    plot_w = WIDTH - 60
    body = []
    for i, (label, value) in enumerate(data):
        y = TOP + i * row
        w = plot_w * value / top
        short = label if len(label) <= 90 else label[:89] + "…"
        body.append(f'<text class="label" x="4" y="{y + 10}">{escape(short)}</text>')
        body.append(
            f'<rect class="bar bad" x="4" y="{y + 14}" width="{w:.1f}" height="14" '
            f'data-label="{escape(label)}" data-value="{value:g}">'
            f"<title>{escape(label)}: {escape(fmt(value))}</title></rect>"
        )
        body.append(f'<text class="value" x="{w + 10:.1f}" y="{y + 26}">{escape(fmt(value))}</text>')
    return _svg(testid, title, body, height=height)
