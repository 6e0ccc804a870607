#!/usr/bin/env python3
"""Prints a results file of loadtests/compare/run.sh as a table: each figure
for pushlog and nginx+nchan side by side, with the ratio pushlog/nchan.

    python3 loadtests/compare/table.py loadtests/compare/out/<date>.jsonl

Each line of the file is one loadgen result line with a `compare` field
(label, server, exit code) put in front by run.sh. Standard library only.
"""

import json
import sys

SERVERS = ("pushlog", "nchan")


def dig(line, *path):
    """line[path[0]][path[1]]…, or None where anything is missing."""
    value = line
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return None
        value = value[key]
    return value


def kib(value):
    return None if value is None else value / 1024


def ms(value):
    return None if value is None else value / 1000


def connection_losses(line):
    failures = dig(line, "connections", "connect_failures")
    ended = dig(line, "connections", "ended_by_server")
    if failures is None or ended is None:
        return None
    return sum(failures.values()) + sum(ended.values())


def delivery_problems(line):
    parts = [dig(line, "delivery", key) for key in ("gaps", "duplicates", "out_of_order")]
    return None if None in parts else sum(parts)


def subscriber_losses(line):
    """Subscribers that failed to connect or were ended by the server."""
    transports = dig(line, "transports") or {}
    if not transports:
        return None
    total = 0
    for tally in transports.values():
        total += sum(tally.get("connect_failures", {}).values())
        total += sum(tally.get("unexpected_ends", {}).values())
    return total


# (label, figure, unit, better, how to read it from a result line)
CONNS = [
    ("connections live", "", "higher", lambda l: dig(l, "connections", "live_after_open")),
    ("RSS per connection", "KiB", "lower", lambda l: kib(dig(l, "rss_per_connection_bytes"))),
    ("PSS per connection", "KiB", "lower", lambda l: kib(dig(l, "pss_per_connection_bytes"))),
    ("server RSS, all open", "MiB", "lower",
     lambda l: kib(dig(l, "server", "rss_kib", "connected"))),
    ("idle CPU", "% core", "lower", lambda l: dig(l, "server_cpu_pct_during_hold")),
    ("heartbeats received", "", "", lambda l: dig(l, "connections", "heartbeats_received")),
    ("connections lost", "", "lower", connection_losses),
]
def user_per_delivery(line):
    """Server CPU per delivery outside the kernel: the server's own code."""
    total = dig(line, "server_cpu_us_per_delivery")
    kernel = dig(line, "server_sys_us_per_delivery")
    if total is None or kernel is None:
        return None
    return round(total - kernel, 2)


FANOUT = [
    ("subscribers", "", "", lambda l: dig(l, "delivery", "subscribed")),
    ("events published", "", "", lambda l: dig(l, "publish", "events")),
    ("publish→receive p50", "ms", "lower", lambda l: ms(dig(l, "delivery", "latency_us", "p50"))),
    ("publish→receive p99", "ms", "lower", lambda l: ms(dig(l, "delivery", "latency_us", "p99"))),
    ("publish→receive max", "ms", "lower", lambda l: ms(dig(l, "delivery", "latency_us", "max"))),
    ("deliveries/s", "", "higher", lambda l: dig(l, "delivery", "deliveries_per_sec")),
    ("server CPU per delivery", "µs", "lower", lambda l: dig(l, "server_cpu_us_per_delivery")),
    ("  of which in the kernel", "µs", "lower", lambda l: dig(l, "server_sys_us_per_delivery")),
    ("  of which in user space", "µs", "lower", user_per_delivery),
    ("server CPU", "% core", "", lambda l: dig(l, "server", "cpu", "cpu_pct")),
    ("loadgen CPU", "% core", "", lambda l: dig(l, "loadgen", "cpu", "cpu_pct")),
    ("events lost (missing)", "", "lower", lambda l: dig(l, "delivery", "missing_events")),
    ("gaps + dup + out of order", "", "lower", delivery_problems),
    ("subscribers lost", "", "lower", subscriber_losses),
]
PUBLISH = [
    ("events acknowledged/s", "", "higher", lambda l: dig(l, "publish", "events_per_sec")),
    ("request latency p50", "ms", "lower", lambda l: ms(dig(l, "publish", "latency_us", "p50"))),
    ("request latency p99", "ms", "lower", lambda l: ms(dig(l, "publish", "latency_us", "p99"))),
    ("server CPU per event", "µs", "lower", lambda l: dig(l, "server_cpu_us_per_event")),
    ("server CPU", "% core", "", lambda l: dig(l, "server", "cpu", "cpu_pct")),
    ("loadgen CPU", "% core", "", lambda l: dig(l, "loadgen", "cpu", "cpu_pct")),
    ("failed requests", "", "lower",
     lambda l: None if dig(l, "publish", "errors") is None else sum(dig(l, "publish", "errors").values())),
]
SECTIONS = {"conns": CONNS, "fanout": FANOUT, "saturation": FANOUT, "publish": PUBLISH}


def heading(label, line):
    params = line.get("params", {})
    transport = params.get("transport", "?")
    if label == "conns":
        return (f"conns: {params.get('connections', '?')} idle connections ({transport}), "
                f"held {params.get('hold_secs', '?')} s")
    if label == "publish":
        return (f"publish: {params.get('publishers', '?')} concurrent publishers, "
                f"{params.get('batch', '?')} event(s) per request, {params.get('duration_secs', '?')} s "
                "(pushlog: durable, fsynced; nchan: in memory)")
    rate = params.get("rate", "?")
    rate = "as fast as the publisher goes" if rate == "max" else f"{rate} events/s"
    title = "fan-out at saturation" if label == "saturation" else "fan-out"
    return (f"{title}: {params.get('subscribers', '?')} subscribers ({transport}) on one topic, "
            f"{rate} for {params.get('duration_secs', '?')} s")


def number(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int) or float(value).is_integer() and abs(value) >= 100:
        return f"{int(value):,}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def ratio(a, b):
    if a is None or b is None or isinstance(a, bool):
        return "-"
    if b == 0:
        return "=" if a == 0 else "-"
    return f"{a / b:.2f}"


def load(path):
    runs = {}
    with open(path, encoding="utf-8") as lines:
        for text in lines:
            text = text.strip()
            if not text:
                continue
            line = json.loads(text)
            tag = line.get("compare", {})
            # A later line for the same run (a re-run appended) wins.
            runs[(tag.get("label"), tag.get("server"))] = line
    return runs


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    runs = load(argv[1])
    labels = [label for label in SECTIONS if any(key[0] == label for key in runs)]
    if not labels:
        print(f"{argv[1]}: no results", file=sys.stderr)
        return 1
    width = (34, 12, 12, 14, 7)
    rule = "-" * (sum(width) + len(width) - 1)
    print(f"{'':{width[0]}} {'pushlog':>{width[1]}} {'nchan':>{width[2]}} "
          f"{'pushlog/nchan':>{width[3]}} {'better':>{width[4]}}")
    failed = []
    for label in labels:
        pair = {server: runs.get((label, server)) for server in SERVERS}
        first = next(line for line in pair.values() if line is not None)
        print(rule)
        print(heading(label, first))
        for server, line in pair.items():
            if line is None:
                continue
            if line.get("error"):
                failed.append(f"{label} against {server}: {line['error']}")
            elif not line.get("ok"):
                failed.append(f"{label} against {server}: {'; '.join(line.get('violations', []))}")
        for name, unit, better, read in SECTIONS[label]:
            values = {s: (read(line) if line else None) for s, line in pair.items()}
            title = f"  {name}" + (f" ({unit})" if unit else "")
            print(f"{title:{width[0]}} {number(values['pushlog']):>{width[1]}} "
                  f"{number(values['nchan']):>{width[2]}} "
                  f"{ratio(values['pushlog'], values['nchan']):>{width[3]}} {better:>{width[4]}}")
    print(rule)
    print("RSS sums the server's processes (nginx: master and workers, so pages they share count "
          "once per process); PSS splits shared pages among them.")
    if failed:
        print("Runs whose checks failed:")
        for text in failed:
            print(f"  {text}")
    else:
        print("Every run's checks held.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
