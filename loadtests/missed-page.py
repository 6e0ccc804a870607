#!/usr/bin/env python3
"""Times full 10,000-event pages of GET /events/missed from one client, the
way a reconnecting front end asks for them: sequential requests on one
keep-alive connection, each from a different cursor, over a log that already
holds enough events (run a loadgen publish first). Prints one JSON line.

With --changes, each missed page alternates with a 10,000-entity page of
GET /events/changes?since=0 on the same connection, so the two are timed
under the same conditions (publish with `loadgen publish --entities 10000`
first, so the entity index holds 10,000 entities).

    PUSHLOG_JWT_SECRET=... python3 loadtests/missed-page.py http://127.0.0.1:8080 [REQUESTS] [--changes]

Loopback URLs only; standard library only.
"""

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import sys
import time
from urllib.parse import urlsplit

PAGE = 10_000


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def reader_token(secret: bytes) -> str:
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64url(json.dumps({"sub": "missed-page", "exp": int(time.time()) + 3600}).encode())
    signature = b64url(hmac.new(secret, f"{header}.{claims}".encode(), hashlib.sha256).digest())
    return f"{header}.{claims}.{signature}"


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--changes"]
    with_changes = len(args) != len(sys.argv) - 1
    if len(args) not in (1, 2) or "PUSHLOG_JWT_SECRET" not in os.environ:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    url = urlsplit(args[0])
    host = url.hostname or ""
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        print(f"missed-page: {host} is not a loopback address", file=sys.stderr)
        return 2
    requests = int(args[1]) if len(args) == 2 else 40
    token = reader_token(os.environ["PUSHLOG_JWT_SECRET"].encode())
    conn = http.client.HTTPConnection(host, url.port or 80, timeout=30)

    def get(path: str) -> dict:
        """The page, and the milliseconds from sending the request to its
        last byte. Parsing the JSON comes after the clock stops: Python
        takes ~20 ms over 2.35 MB, which is the client's time, not the
        server's."""
        started = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"Bearer {token}"})
        response = conn.getresponse()
        body = response.read()
        elapsed_ms = (time.perf_counter() - started) * 1000
        if response.status != 200:
            raise SystemExit(f"missed-page: {path} answered {response.status}: {body[:200]!r}")
        return {"bytes": len(body), "page": json.loads(body), "ms": elapsed_ms}

    head = get("/events/missed?since=0&limit=1")["page"]["head"]
    span = PAGE * (requests + 1)
    if head < span:
        raise SystemExit(f"missed-page: the log holds {head} events; publish at least {span} first")
    times, sizes, changes_times = [], [], []
    for i in range(requests):
        if with_changes:
            answer = get(f"/events/changes?since=0&limit={PAGE}")
            changes_times.append(answer["ms"])
            events = answer["page"]["events"]
            entities = {(e["topic"], e["entity"]["kind"], e["entity"]["id"]) for e in events}
            if len(events) != PAGE or len(entities) != PAGE:
                raise SystemExit(f"missed-page: /events/changes did not answer {PAGE} distinct entities")
        since = head - span + i * PAGE
        answer = get(f"/events/missed?since={since}&limit={PAGE}")
        times.append(answer["ms"])
        events = answer["page"]["events"]
        if len(events) != PAGE or events[0]["id"] != since + 1:
            raise SystemExit(f"missed-page: the page after {since} is not the {PAGE} events after it")
        sizes.append(answer["bytes"])
    result = {
        "scenario": "missed_page",
        "requests": requests,
        "events_per_page": PAGE,
        "bytes_per_page": [min(sizes), max(sizes)],
        "latency_ms": summary(times),
    }
    if with_changes:
        result["changes_latency_ms"] = summary(changes_times)
    print(json.dumps(result))
    return 0


def summary(times: list) -> dict:
    times = sorted(times)
    return {
        "min": round(times[0], 1),
        "p50": round(times[len(times) // 2], 1),
        "p90": round(times[int(len(times) * 0.9)], 1),
        "max": round(times[-1], 1),
    }


if __name__ == "__main__":
    sys.exit(main())
