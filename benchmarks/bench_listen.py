"""Benchmark of `switchboard listen`: sustained rate, acknowledgement latency, peak RSS, freshness.

    .venv/bin/python benchmarks/bench_listen.py [--events 100000] [--rate 500] [--flush-seconds 5]

Starts the real `switchboard listen` (DuckDB warehouse in a temp dir) and sends signed Sendblue and
Chatwoot deliveries over loopback at a fixed rate, one request per event. Prints the achieved rate, ack
latency percentiles, the listener's peak RSS (VmHWM) and freshness: for each event, from its send time to
the moment /healthz counts it as flushed (the load committed, so the row is queryable).
Targets (issue 13): 500 events/s sustained, p99 ack < 50 ms, RSS < 300 MiB for 100,000 events,
freshness < flush_seconds + 2 s.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx

CW, SB = "bench-chatwoot-secret", "bench-sendblue-secret"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def delivery(i: int) -> tuple[str, bytes, dict[str, str]]:
    if i % 2:
        body = json.dumps(
            {"event": "contact_updated", "id": i, "name": f"Person {i}", "email": f"p{i}@example.com"}
        ).encode()
        stamp = str(int(time.time()))
        sig = hmac.new(CW.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        headers = {
            "x-chatwoot-delivery": str(uuid.uuid4()),
            "x-chatwoot-timestamp": stamp,
            "x-chatwoot-signature": f"sha256={sig}",
        }
        return "/webhooks/chatwoot", body, headers
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    body = json.dumps({"message_handle": f"bench-{i}", "status": "DELIVERED", "date_updated": stamp, "is_outbound": True,
                       "number": "+15551230001", "sendblue_number": "+15550000001", "content": "hello"}).encode()  # fmt: skip
    return "/webhooks/sendblue", body, {"sb-signing-secret": SB}


def rss_peak_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def run(events: int, rate: float, flush_seconds: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-listen-"))
    port = free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "DESTINATION__", "LISTEN__"))
    }
    env |= {
        "SOURCES__CHATWOOT__WEBHOOK_SECRET": CW,
        "SOURCES__SENDBLUE__WEBHOOK_SECRET": SB,
        "DESTINATION__DUCKDB__CREDENTIALS": str(work / "warehouse.duckdb"),
        "LISTEN__FLUSH_SECONDS": str(flush_seconds),
        "LISTEN__SPOOL_DIR": str(work / "spool"),
    }
    exe = str(Path(sys.executable).parent / "switchboard")
    proc = subprocess.Popen([exe, "listen", "--port", str(port), "--pipelines-dir", str(work / "dlt")], cwd=work, env=env, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(
        base_url=base, limits=httpx.Limits(max_connections=64), timeout=30
    ) as client:
        while True:
            try:
                await client.get("/healthz")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        latencies: list[float] = [0.0] * events
        sent_at: list[float] = [0.0] * events
        flushed: list[tuple[float, int]] = []  # (time, flushed_events)
        done = asyncio.Event()
        errors: list[int] = []

        async def watch() -> None:
            while not done.is_set() or (flushed and flushed[-1][1] < events):
                health = (await client.get("/healthz")).json()
                flushed.append((time.monotonic(), int(health["flushed_events"])))
                if health["flushed_events"] >= events:
                    return
                await asyncio.sleep(0.1)

        queue: asyncio.Queue[int] = asyncio.Queue()

        async def sender() -> None:
            """One keep-alive connection sending what is due (httpx's pool cost more CPU per request than
            the listener itself spends: the client must not be what is measured)."""
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            while True:
                i = await queue.get()
                path, body, headers = delivery(i)
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(
                    f"POST {path} HTTP/1.1\r\nhost: bench\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\n{head}\r\n".encode()
                    + body
                )
                status = int((await reader.readline()).split()[1])
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                latencies[i] = time.monotonic() - sent_at[i]
                if status != 200:
                    errors.append(i)
                queue.task_done()

        watcher = asyncio.create_task(watch())
        t0 = time.monotonic()
        senders = [asyncio.create_task(sender()) for _ in range(32)]
        for i in range(events):
            due = t0 + i / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            sent_at[i] = time.monotonic()
            queue.put_nowait(i)
        await queue.join()
        elapsed = time.monotonic() - t0
        for task in senders:
            task.cancel()
        done.set()
        await asyncio.wait_for(watcher, timeout=600)
        peak = rss_peak_mib(proc.pid)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=120)
    times = [t for t, _ in flushed]
    counts = [n for _, n in flushed]
    freshness = []
    for i in range(0, events, max(1, events // 2000)):
        k = bisect.bisect_left(counts, i + 1)
        freshness.append(times[k] - sent_at[i])
    lat = sorted(latencies)
    fresh = sorted(freshness)

    def pct(xs: list[float], p: float) -> float:
        return xs[min(len(xs) - 1, int(p * len(xs)))]

    print(f"events {events}, target rate {rate:g}/s, achieved {events / elapsed:.0f}/s over {elapsed:.1f}s")
    print(
        f"ack latency ms: p50 {pct(lat, 0.5) * 1000:.1f}, p99 {pct(lat, 0.99) * 1000:.1f}, max {lat[-1] * 1000:.1f}"
    )
    print(f"listener peak RSS: {peak:.0f} MiB; non-200 answers: {len(errors)}")
    print(f"freshness s (send -> flushed, healthz polled every 0.1 s): p50 {pct(fresh, .5):.2f}, p99 {pct(fresh, .99):.2f}, "
          f"max {fresh[-1]:.2f} (target < flush_seconds + 2 = {flush_seconds + 2:g})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--flush-seconds", type=float, default=5)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.run(run(args.events, args.rate, args.flush_seconds))
    except ImportError:
        asyncio.run(run(args.events, args.rate, args.flush_seconds))


if __name__ == "__main__":
    main()
