"""A small accessible SVG of an indicator's monthly series against its target, for the app
and for pasting into a report: drawn here as text (no browser, no script), every piece of
text escaped.

It has ``role="img"``, a ``<title>`` and a ``<desc>`` (what it shows, the latest value, the
target and the forecast, in the caller's language) that screen readers read, axis labels,
the target as a dashed line, and a ``<title>`` on every point.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Final
from xml.sax.saxutils import escape, quoteattr

from babel.numbers import format_decimal, format_percent

from api.i18n import FORMAT_LOCALES, N_, format_rate, translate
from api.stats.report import forecast_text, month_text
from schemas.stats import Series

SVG_TYPE: Final = "image/svg+xml"
WIDTH: Final = 640
HEIGHT: Final = 320
LEFT, RIGHT, TOP, BOTTOM = 64, 20, 44, 62  # the plot's margins
VALUE_COLOUR: Final = "#2F5597"
TARGET_COLOUR: Final = "#C00000"
GRID_COLOUR: Final = "#D9D9D9"
TEXT_COLOUR: Final = "#262626"
WHOLE_PERCENT: Final = {"vi": "#,##0\u00a0%", "en": "#,##0%"}


def amount(value: float, unit: str, language: str) -> str:
    if unit == "fraction":
        return format_rate(value, language)
    return format_decimal(value, format="#,##0.00", locale=FORMAT_LOCALES[language])


def _month(label: str) -> date:
    return date(int(label[:4]), int(label[5:7]), 1)


def _scale_top(series: Series) -> tuple[float, list[float]]:
    """The value axis: 0 to 100 % for a percent, 0 to a round number above the data and
    the target for a ratio; and its gridlines."""
    if series.unit == "fraction":
        return 1.0, [0.0, 0.25, 0.5, 0.75, 1.0]
    seen = [p.value for p in series.points if p.value is not None]
    seen += [p.target for p in series.points if p.target is not None]
    top = max(1.0, math.ceil(max(seen, default=1.0) * 1.1 * 2) / 2)
    step = top / 4
    return top, [step * index for index in range(5)]


def _text(x: float, y: float, content: str, **attributes: str) -> str:
    extra = "".join(f" {name.replace('_', '-')}={quoteattr(value)}" for name, value in
                    attributes.items())  # fmt: skip
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(content)}</text>'


def describe(series: Series, language: str) -> str:
    """The ``<desc>``: what the chart shows, in words."""
    name = series.name
    months = len(series.points)
    parts = [
        translate(
            language,
            N_("%(indicator)s in %(area)s, month by month over the last %(count)s months."),
            {"indicator": name, "area": series.area.name, "count": months},
        )
    ]
    latest = next((p for p in reversed(series.points) if p.value is not None), None)
    if latest is None:
        parts.append(translate(language, N_("No month has data yet.")))
    else:
        parts.append(
            translate(
                language,
                N_("Latest: %(value)s in %(month)s."),
                {
                    "value": amount(latest.value or 0.0, series.unit, language),
                    "month": month_text(_month(latest.period), language),
                },
            )
        )
    target = series.points[-1].target if series.points else None
    if target is None:
        parts.append(translate(language, N_("No target is set.")))
    else:
        parts.append(
            translate(
                language,
                N_("Target: %(target)s (dashed line)."),
                {"target": amount(target, series.unit, language)},
            )
        )
    forecast = forecast_text(series.forecast, language)
    if forecast:
        parts.append(translate(language, N_("Forecast: %(forecast)s."), {"forecast": forecast}))
    return " ".join(parts)


def render(series: Series, language: str) -> str:
    """The SVG document."""
    points = series.points
    plot_w = WIDTH - LEFT - RIGHT
    plot_h = HEIGHT - TOP - BOTTOM
    top, grid = _scale_top(series)
    count = max(len(points), 2)

    def x(index: int) -> float:
        return LEFT + plot_w * index / (count - 1)

    def y(value: float) -> float:
        return TOP + plot_h * (1 - min(max(value, 0.0), top) / top)

    title = f"{series.name}: {series.area.name}"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="chart-title '
        f'chart-desc" lang={quoteattr(language)} font-family="Arial, Helvetica, sans-serif" '
        f'font-size="11" fill="{TEXT_COLOUR}">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">{escape(describe(series, language))}</desc>',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#FFFFFF"/>',
        _text(LEFT, 20, title, font_size="13", font_weight="bold"),
    ]
    # Gridlines and the value axis.
    parts.append('<g class="axis y-axis">')
    for level in grid:
        at = y(level)
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{at:.1f}" y2="{at:.1f}" '
            f'stroke="{GRID_COLOUR}" stroke-width="1"/>'
        )
        label = (
            format_percent(level, format=WHOLE_PERCENT[language], locale=FORMAT_LOCALES[language])
            if series.unit == "fraction"
            else amount(level, series.unit, language)
        )
        parts.append(_text(LEFT - 6, at + 4, label, text_anchor="end"))
    axis_name = translate(language, N_("Value"))
    parts.append(
        _text(14, TOP + plot_h / 2, axis_name, text_anchor="middle",
              transform=f"rotate(-90 14 {TOP + plot_h / 2:.1f})")
    )  # fmt: skip
    parts.append("</g>")
    # The month axis: every third month and the last.
    parts.append('<g class="axis x-axis">')
    base = TOP + plot_h
    parts.append(
        f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{base}" y2="{base}" stroke="#7F7F7F"/>'
    )
    for index, point in enumerate(points):
        if (len(points) - 1 - index) % 3:
            continue
        at = x(index)
        parts.append(
            f'<line x1="{at:.1f}" x2="{at:.1f}" y1="{base}" y2="{base + 4}" stroke="#7F7F7F"/>'
        )
        parts.append(
            _text(at, base + 16, month_text(_month(point.period), language), text_anchor="middle",
                  font_size="10")
        )  # fmt: skip
    parts.append(
        _text(
            LEFT + plot_w / 2, HEIGHT - 10, translate(language, N_("Month")), text_anchor="middle"
        )
    )
    parts.append("</g>")
    # The target: a dashed step line (targets are per year).
    steps = [(index, p.target) for index, p in enumerate(points) if p.target is not None]
    if steps:
        path = []
        previous: float | None = None
        for index, target in steps:
            start = x(index) if index == 0 else (x(index - 1) + x(index)) / 2
            if previous is None:
                path.append(f"M{start:.1f},{y(target):.1f}")
            elif target != previous:
                path.append(f"H{start:.1f}V{y(target):.1f}")
            previous = target
        path.append(f"H{x(steps[-1][0]):.1f}")
        last_target = steps[-1][1]
        label = translate(
            language,
            N_("Target %(target)s"),
            {"target": amount(last_target, series.unit, language)},
        )
        parts.append(
            f'<path class="target" d="{"".join(path)}" fill="none" stroke="{TARGET_COLOUR}" '
            f'stroke-width="2" stroke-dasharray="6 4"><title>{escape(label)}</title></path>'
        )
        parts.append(
            _text(WIDTH - RIGHT, y(last_target) - 6, label, text_anchor="end",
                  fill=TARGET_COLOUR)
        )  # fmt: skip
    # The series: a line broken where a month has no figure (none yet, or withheld).
    segments: list[str] = []
    dots: list[str] = []
    pen_down = False
    for index, point in enumerate(points):
        if point.value is None:
            pen_down = False
            continue
        at_x, at_y = x(index), y(point.value)
        segments.append(f"{'L' if pen_down else 'M'}{at_x:.1f},{at_y:.1f}")
        pen_down = True
        shown = f"{month_text(_month(point.period), language)}: " + amount(
            point.value, series.unit, language
        )
        dots.append(
            f'<circle cx="{at_x:.1f}" cy="{at_y:.1f}" r="3" fill="{VALUE_COLOUR}">'
            f"<title>{escape(shown)}</title></circle>"
        )
    if segments:
        parts.append(
            f'<path class="series" d="{"".join(segments)}" fill="none" stroke="{VALUE_COLOUR}" '
            f'stroke-width="2.5" stroke-linejoin="round"/>'
        )
        parts.append(f'<g class="points">{"".join(dots)}</g>')
    else:
        parts.append(
            _text(LEFT + plot_w / 2, TOP + plot_h / 2, translate(language, N_("No data yet")),
                  text_anchor="middle", font_size="13")
        )  # fmt: skip
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
