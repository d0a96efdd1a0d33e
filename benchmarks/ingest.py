"""Ingest load measurement: requests/s and records/s for single-record and batched POSTs.

Reusable from benchmarks (``await measure(...)`` returns a dict) and runnable alone::

    python -m benchmarks.ingest                      # own Tansu broker + `gateledger serve ingest`, both modes
    python -m benchmarks.ingest --target http://127.0.0.1:8480 --mode batch --seconds 20

The load generator keeps ``concurrency`` requests in flight for ``seconds`` and counts only
answers: 200 is accepted (Kafka acknowledged), anything else is listed under ``statuses``.
Records are the simulator's Obot shim records, sent to the shim endpoint as the shim sends them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from gateledger import jsonutil
from gateledger.net import free_port, wait_port

PATH = "/api/mcp-audit-logs"


def shim_records(n: int, seed: int = 1) -> list[dict[str, Any]]:
    """``n`` realistic shim audit records from the simulator (deterministic)."""
    from producers.simulator import simulate

    out: list[dict[str, Any]] = []
    start = datetime(2026, 11, 20, tzinfo=UTC)
    while len(out) < n:
        out.extend(simulate(max(50, n // 2), seed=seed + len(out), start=start).records("obot-audit"))
    return out[:n]


def _pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def measure(target: str, *, batch_size: int, seconds: float = 10.0, concurrency: int = 16,
                  records: list[dict[str, Any]] | None = None, path: str = PATH,
                  headers: dict[str, str] | None = None, bodies: list[bytes] | None = None,
                  ok_status: int = 200) -> dict[str, Any]:
    """POST ``batch_size`` records per request for ``seconds`` (or the given ``bodies`` in turn);
    throughput of ``ok_status`` answers and latency percentiles."""
    if bodies is None:
        pool = records or shim_records(max(2000, batch_size * 20))
        bodies = [jsonutil.dumps(pool[i : i + batch_size]) for i in range(0, len(pool) - batch_size + 1, batch_size)]
    url = target.rstrip("/") + path
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    sent = 0
    deadline = time.perf_counter() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as session:

        async def worker(k: int) -> None:
            nonlocal sent
            i = k
            while time.perf_counter() < deadline:
                body = bodies[i % len(bodies)]
                i += concurrency
                t0 = time.perf_counter()
                async with session.post(url, data=body, headers=hdrs) as resp:
                    await resp.read()
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                latencies.append(time.perf_counter() - t0)
                if resp.status == ok_status:
                    sent += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - started
    ms = [x * 1000 for x in latencies]
    return {
        "mode": "single" if batch_size == 1 else "batch",
        "batch_size": batch_size,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "requests": len(latencies),
        "accepted_requests": sent,
        "requests_per_s": round(sent / elapsed, 1),
        "records_per_s": round(sent * batch_size / elapsed, 1),
        "latency_ms": {"p50": round(_pct(ms, 50), 2), "p90": round(_pct(ms, 90), 2),
                       "p99": round(_pct(ms, 99), 2), "mean": round(statistics.fmean(ms), 2) if ms else 0.0},
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


async def local_ingest_bench(*, seconds: float = 10.0, batch_size: int = 100, concurrency: int = 16,
                             modes: tuple[str, ...] = ("single", "batch"), workers: int = 1) -> dict[str, Any]:
    """Start an own Tansu broker and ``gateledger serve ingest`` (a subprocess), measure, stop both."""
    from gateledger.kafka import KafkaTarget, ensure_gateledger_topics, wait_for_broker
    from gateledger.settings import KafkaSettings
    from gateledger.stack.broker import TansuBroker

    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "ingest_workers": workers}
    with tempfile.TemporaryDirectory(prefix="gl-bench-") as tmp:
        broker = TansuBroker(log_path=Path(tmp) / "broker.log")
        broker.start()
        proc = None
        try:
            await wait_for_broker(broker.bootstrap)
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
            await ensure_gateledger_topics(kafka, KafkaTarget(broker.bootstrap, True, "bench."))
            port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("GATELEDGER_")}
            env.update(GATELEDGER_DATA_DIR=str(Path(tmp) / "data"), GATELEDGER_KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
                       GATELEDGER_KAFKA_TANSU_WORKAROUNDS="true", GATELEDGER_TOPIC_PREFIX="bench.",
                       GATELEDGER_INGEST_PORT=str(port), GATELEDGER_MASKING_SALT="bench", GATELEDGER_LOG_LEVEL="WARNING",
                       GATELEDGER_INGEST_WORKERS=str(workers))
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "gateledger_cli.main", "serve", "ingest", env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=open(Path(tmp) / "ingest.log", "wb"),  # noqa: SIM115
            )
            await asyncio.to_thread(wait_port, "127.0.0.1", port, 60)
            target = f"http://127.0.0.1:{port}"
            pool = shim_records(4000)
            await measure(target, batch_size=10, seconds=1.0, concurrency=4, records=pool)  # warm-up
            for mode in modes:
                size = 1 if mode == "single" else batch_size
                results[mode] = await measure(target, batch_size=size, seconds=seconds, concurrency=concurrency,
                                              records=pool)
        finally:
            if proc is not None and proc.returncode is None:
                proc.terminate()
                await proc.wait()
            broker.stop()
    return results


def main() -> None:
    """CLI: print the measurement as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--target", help="an already running ingest service (default: start one with its own broker)")
    ap.add_argument("--mode", choices=["single", "batch", "both"], default="both")
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1, help="ingest processes when starting one (GATELEDGER_INGEST_WORKERS)")
    args = ap.parse_args()
    modes = ("single", "batch") if args.mode == "both" else (args.mode,)
    if args.target:
        async def remote() -> dict[str, Any]:
            out: dict[str, Any] = {}
            for mode in modes:
                out[mode] = await measure(args.target, batch_size=1 if mode == "single" else args.batch_size,
                                          seconds=args.seconds, concurrency=args.concurrency)
            return out

        result = asyncio.run(remote())
    else:
        result = asyncio.run(local_ingest_bench(seconds=args.seconds, batch_size=args.batch_size,
                                                concurrency=args.concurrency, modes=modes, workers=args.workers))
    print(jsonutil.dumps_str(result))


if __name__ == "__main__":
    main()
