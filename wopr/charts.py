"""Bar charts as inline SVG drawn on the server: no script, no network fetch (inline SVG in
HTML needs no namespace URL), nothing the site's Content-Security-Policy could refuse (colours
are SVG presentation attributes and classes of wopr/static/wopr/cockpit.css, never a style
attribute). Every text goes through format_html.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from billing.subscriptions import money_display
from wopr.dashboard import DayDurations, DaySales

WIDTH = 640
HEIGHT = 160
LEFT = 44  # room for the axis labels
RIGHT = 20  # room for the last day's label
BOTTOM = 20
TOP = 20  # room for the top value's label
BAR_FILL = "#417690"
MARK_FILL = "#ba2121"


@dataclass(frozen=True)
class Bar:
    """One bar: its x-axis label (shown every few bars), height, tooltip and an optional mark
    (a dot drawn at another value, e.g. the p90 above a p50 bar)."""

    label: str
    value: float
    title: str
    mark: float | None = None


def _scale(bars: Sequence[Bar]) -> float:
    top = max([bar.value for bar in bars] + [bar.mark or 0 for bar in bars] + [0])
    return top or 1.0


def _bar_rects(bars: Sequence[Bar], top: float) -> SafeString:
    slot = (WIDTH - LEFT - RIGHT) / max(len(bars), 1)
    plot = HEIGHT - BOTTOM - TOP
    rows = []
    for index, bar in enumerate(bars):
        height = plot * bar.value / top
        x = LEFT + index * slot + slot * 0.15
        y = TOP + plot - height
        rows.append((f"{x:.1f}", f"{y:.1f}", f"{slot * 0.7:.1f}", f"{height:.1f}", bar.title))
    return format_html_join(
        "",
        '<rect class="chart-bar" x="{}" y="{}" width="{}" height="{}" fill="' + BAR_FILL + '">'
        "<title>{}</title></rect>",
        rows,
    )


def _marks(bars: Sequence[Bar], top: float) -> SafeString:
    slot = (WIDTH - LEFT - RIGHT) / max(len(bars), 1)
    plot = HEIGHT - BOTTOM - TOP
    rows = [
        (f"{LEFT + index * slot + slot / 2:.1f}", f"{TOP + plot - plot * bar.mark / top:.1f}")
        for index, bar in enumerate(bars)
        if bar.mark is not None
    ]
    return format_html_join(
        "", '<circle class="chart-mark" cx="{}" cy="{}" r="3" fill="' + MARK_FILL + '"/>', rows
    )


def _axis(bars: Sequence[Bar], top: float, unit: str) -> SafeString:
    slot = (WIDTH - LEFT - RIGHT) / max(len(bars), 1)
    labels = format_html_join(
        "",
        '<text class="chart-label" x="{}" y="{}" text-anchor="middle" font-size="10">{}</text>',
        (
            (f"{LEFT + index * slot + slot / 2:.1f}", HEIGHT - 6, bar.label)
            for index, bar in enumerate(bars)
            if index % 7 == len(bars) % 7 or index == len(bars) - 1
        ),
    )
    return format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>'
        '<text class="chart-label" x="2" y="{}" font-size="10">{} {}</text>'
        '<text class="chart-label" x="2" y="{}" font-size="10">0</text>{}',
        LEFT,
        HEIGHT - BOTTOM,
        WIDTH - RIGHT,
        HEIGHT - BOTTOM,
        TOP - 8,
        f"{top:g}",
        unit,
        HEIGHT - BOTTOM,
        labels,
    )


def bar_chart_svg(bars: Sequence[Bar], *, caption: str, unit: str) -> SafeString:
    """An SVG bar chart of `bars` (one rect each, zero height for a zero), titled `caption`."""
    top = _scale(bars)
    return format_html(
        '<svg class="cockpit-chart" viewBox="0 0 {} {}" '
        'width="{}" height="{}" role="img" aria-label="{}"><title>{}</title>{}{}{}</svg>',
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        caption,
        caption,
        _axis(bars, top, unit),
        _bar_rects(bars, top),
        _marks(bars, top),
    )


def provisioning_chart(days: Sequence[DayDurations]) -> SafeString:
    """Bars: the day's median minutes from start to completion of provision jobs; dots: p90."""
    bars = [
        Bar(
            label=day.day.strftime("%m-%d"),
            value=round(day.p50_minutes or 0, 1),
            title=(
                f"{day.day}: {day.count} provisioned, p50 {day.p50_minutes:.1f} min, "
                f"p90 {day.p90_minutes:.1f} min"
                if day.count
                else f"{day.day}: none provisioned"
            ),
            mark=None if day.p90_minutes is None else round(day.p90_minutes, 1),
        )
        for day in days
    ]
    return bar_chart_svg(bars, caption="Provisioning time (p50 bars, p90 dots)", unit="min")


def sales_chart(days: Sequence[DaySales]) -> SafeString:
    """Bars: orders paid each day; the tooltip carries the day's amounts per currency."""
    bars = [
        Bar(
            label=day.day.strftime("%m-%d"),
            value=day.orders,
            title=f"{day.day}: {day.orders} paid"
            + "".join(
                f", {money_display(cents, currency)}"
                for currency, cents in sorted(day.amounts.items())
            ),
        )
        for day in days
    ]
    return bar_chart_svg(bars, caption="Orders paid per day", unit="orders")
