#!/usr/bin/env python3
"""Draws loadgen's fan-out results as an SVG chart: publish→receive latency
percentiles at a fixed rate, and deliveries per second at saturation, both
against the number of subscribers, one line per server and transport.

    python3 loadtests/chart.py RESULTS.jsonl [MORE.jsonl …] -o chart.svg

Reads loadgen's one-JSON-line results (``scenario: "fanout"``); lines of other
scenarios are ignored. A run with ``rate: "max"`` is a saturation point
(deliveries/s, one line per publish batch size); any other rate is a
latency point. Standard library only, so
that the chart comes from the same checkout that made the numbers.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

WIDTH, HEIGHT = 960, 420
PANEL_W, PANEL_H = 380, 290
MARGIN_LEFT, MARGIN_TOP = 70, 60
GAP = 90
COLOURS = {
    "pushlog": ("#1f5fbf", "#6f9fe6"),
    "nchan": ("#c2410c", "#f59e6b"),
}
FALLBACK_COLOURS = ("#4b5563", "#9ca3af")


@dataclass(frozen=True)
class Point:
    server: str
    transport: str
    subscribers: int
    saturated: bool
    batch: int
    p50_ms: float
    p99_ms: float
    deliveries_per_sec: float


def read_points(paths: list[Path]) -> list[Point]:
    points = []
    for path in paths:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                result = json.loads(line)
            except json.JSONDecodeError as error:
                sys.exit(f"{path}:{number}: not JSON: {error}")
            if result.get("scenario") != "fanout":
                continue
            params, delivery = result["params"], result["delivery"]
            latency = delivery["latency_us"]
            points.append(
                Point(
                    server=params.get("server", "pushlog"),
                    transport=params.get("transport", "both"),
                    subscribers=int(params["subscribers"]),
                    saturated=str(params.get("rate")) == "max",
                    batch=int(params.get("batch", 1)),
                    p50_ms=latency["p50"] / 1000,
                    p99_ms=latency["p99"] / 1000,
                    deliveries_per_sec=float(delivery["deliveries_per_sec"]),
                )
            )
    return points


def nice_max(value: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above `value`."""
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        candidate = step * 10**exponent
        if candidate >= value:
            return float(candidate)
    return float(10 ** (exponent + 1))


def fmt_tick(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    return f"{value:g}"


class Panel:
    """One plot: log-scale subscribers on x, linear y from zero."""

    def __init__(self, left: float, title: str, y_label: str, xs: list[int], y_max: float):
        self.left, self.top = left, MARGIN_TOP
        self.title, self.y_label = title, y_label
        self.x_lo = math.log10(min(xs) / 1.3)
        self.x_hi = math.log10(max(xs) * 1.3)
        self.xs = sorted(set(xs))
        self.y_max = nice_max(y_max)

    def x(self, subscribers: int) -> float:
        share = (math.log10(subscribers) - self.x_lo) / (self.x_hi - self.x_lo)
        return self.left + share * PANEL_W

    def y(self, value: float) -> float:
        return self.top + PANEL_H - value / self.y_max * PANEL_H

    def frame(self) -> list[str]:
        out = [
            f'<text x="{self.left}" y="{self.top - 16}" class="title">{escape(self.title)}</text>',
            f'<rect x="{self.left}" y="{self.top}" width="{PANEL_W}" height="{PANEL_H}" class="frame"/>',
        ]
        for i in range(6):
            value = self.y_max * i / 5
            y = self.y(value)
            out.append(f'<line x1="{self.left}" y1="{y:.1f}" x2="{self.left + PANEL_W}" y2="{y:.1f}" class="grid"/>')
            out.append(f'<text x="{self.left - 8}" y="{y + 4:.1f}" class="tick" text-anchor="end">{fmt_tick(value)}</text>')
        for subscribers in self.xs:
            x = self.x(subscribers)
            out.append(f'<line x1="{x:.1f}" y1="{self.top}" x2="{x:.1f}" y2="{self.top + PANEL_H}" class="grid"/>')
            out.append(
                f'<text x="{x:.1f}" y="{self.top + PANEL_H + 18}" class="tick" text-anchor="middle">{fmt_tick(subscribers)}</text>'
            )
        out.append(
            f'<text x="{self.left + PANEL_W / 2}" y="{self.top + PANEL_H + 40}" class="label" text-anchor="middle">subscribers</text>'
        )
        cy = self.top + PANEL_H / 2
        out.append(
            f'<text x="{self.left - 52}" y="{cy}" class="label" text-anchor="middle" transform="rotate(-90 {self.left - 52} {cy})">{escape(self.y_label)}</text>'
        )
        return out

    def line(self, points: list[tuple[int, float]], colour: str, dashed: bool) -> list[str]:
        coords = " ".join(f"{self.x(s):.1f},{self.y(v):.1f}" for s, v in sorted(points))
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        out = [f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>']
        for s, v in points:
            out.append(f'<circle cx="{self.x(s):.1f}" cy="{self.y(v):.1f}" r="3" fill="{colour}"/>')
        return out


def series_colours(server: str) -> tuple[str, str]:
    return COLOURS.get(server, FALLBACK_COLOURS)


def draw(points: list[Point], caption: str) -> str:
    latency = [p for p in points if not p.saturated]
    saturation = [p for p in points if p.saturated]
    if not latency and not saturation:
        sys.exit("chart: no fanout results in the input")

    body: list[str] = []
    legend: list[tuple[str, str, bool]] = []

    if latency:
        panel = Panel(
            MARGIN_LEFT,
            "publish→receive latency at a fixed rate",
            "milliseconds",
            [p.subscribers for p in latency],
            max(p.p99_ms for p in latency) * 1.1,
        )
        body += panel.frame()
        groups: dict[tuple[str, str], list[Point]] = defaultdict(list)
        for p in latency:
            groups[(p.server, p.transport)].append(p)
        for (server, transport), group in sorted(groups.items()):
            strong, light = series_colours(server)
            body += panel.line([(p.subscribers, p.p99_ms) for p in group], strong, False)
            body += panel.line([(p.subscribers, p.p50_ms) for p in group], light, True)
            legend.append((f"{server} {transport} p99", strong, False))
            legend.append((f"{server} {transport} p50", light, True))

    if saturation:
        left = MARGIN_LEFT + (PANEL_W + GAP if latency else 0)
        panel = Panel(
            left,
            "deliveries per second at saturation",
            "deliveries / s",
            [p.subscribers for p in saturation],
            max(p.deliveries_per_sec for p in saturation) * 1.1,
        )
        body += panel.frame()
        batches: dict[tuple[str, str, int], list[Point]] = defaultdict(list)
        for p in saturation:
            batches[(p.server, p.transport, p.batch)].append(p)
        for (server, transport, batch), group in sorted(batches.items()):
            strong, light = series_colours(server)
            # A publisher sending batches is a different load: its own line.
            batched = batch > 1
            colour = light if batched else strong
            body += panel.line([(p.subscribers, p.deliveries_per_sec) for p in group], colour, batched)
            per = f", batches of {batch}" if batched else ""
            entry = (f"{server} {transport} deliveries/s{per}", colour, batched)
            if entry not in legend:
                legend.append(entry)

    legend_y = MARGIN_TOP + PANEL_H + 62
    x = MARGIN_LEFT
    for text, colour, dashed in legend:
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        body.append(f'<line x1="{x}" y1="{legend_y}" x2="{x + 24}" y2="{legend_y}" stroke="{colour}" stroke-width="2"{dash}/>')
        body.append(f'<text x="{x + 30}" y="{legend_y + 4}" class="tick">{escape(text)}</text>')
        x += 40 + 7 * len(text)
        if x > WIDTH - 200:
            x = MARGIN_LEFT
            legend_y += 18
    height = max(HEIGHT, legend_y + 30)
    body.append(f'<text x="{MARGIN_LEFT}" y="{height - 8}" class="caption">{escape(caption)}</text>')

    style = (
        "text{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;fill:#1f2937}"
        ".title{font-size:15px;font-weight:600}.tick{font-size:11px;fill:#4b5563}"
        ".label{font-size:12px;fill:#374151}.caption{font-size:11px;fill:#6b7280}"
        ".frame{fill:none;stroke:#9ca3af}.grid{stroke:#e5e7eb}"
    )
    return "\n".join(
        [
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}">',
            f"<style>{style}</style>",
            f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
            *body,
            "</svg>",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="+", type=Path, help="loadgen JSONL result files")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the SVG file to write")
    parser.add_argument("--caption", default="", help="a line under the chart (machine, date, command)")
    args = parser.parse_args()
    points = read_points(args.results)
    args.output.write_text(draw(points, args.caption))
    print(f"chart: {len(points)} fanout results → {args.output}", file=sys.stderr)


if __name__ == "__main__":
    main()
