"""What budget enforcement costs the ingest: requests/s of the Obot webhook filter with enforcement
off and on (50 block budgets in the view, the request covered by some, none exhausted: the common
case), refused deliveries (an exhausted budget), AxonFlow pre-checks refused with 402 by the tap
itself, and the decision alone in-process. Medians of ``--runs`` runs::

    python -m benchmarks.ingest_enforcement [--seconds 8] [--runs 3] [--concurrency 16]

Starts its own Tansu broker and ``gateledger serve ingest`` subprocesses (one per setting).
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

from gateledger import jsonutil
from gateledger.net import free_port, wait_port
from benchmarks.ingest import measure

N_BUDGETS = 50


def budgets_file() -> dict[str, Any]:
    """50 block budgets: per-server tool budgets of tenant acme (one exhausted: ms-hot), per-user rolling ones."""
    out = [{"name": f"acme-ms-{i}", "scope": {"tenant": "acme", "mcp_server": f"ms-{i}"}, "period": "day",
            "limit_usd": "100", "action": "block"} for i in range(30)]
    out.append({"name": "acme-ms-hot", "scope": {"tenant": "acme", "mcp_server": "ms-hot"}, "period": "day",
                "limit_usd": "0.01", "action": "block"})
    out += [{"name": f"user-{i}-burst", "scope": {"user": f"user-{i}"}, "period": "rolling", "hours": 6,
             "limit_usd": "5", "action": "block"} for i in range(N_BUDGETS - 31)]
    out.append({"name": "acme-month", "scope": {"tenant": "acme"}, "period": "month", "limit_usd": "1000",
                "action": "block"})
    return {"budgets": out}


def snapshots(now: datetime) -> list[Any]:
    """Realistic state for every budget: the accountant's snapshots after some spend each."""
    from decimal import Decimal

    from gateledger.contracts.events import CostEntry, CostKind
    from gateledger.money.accounting import BudgetBook, snapshot
    from gateledger.money.budgets import parse_budgets

    book = BudgetBook(parse_budgets(budgets_file()))
    n = 0
    for i in range(30):
        for _ in range(3):
            n += 1
            book.apply_cost(CostEntry(id=f"c{n}", tenant="acme", time=now, kind=CostKind.TOOL, event_id=f"e{n}",
                                      mcp_server_id=f"ms-{i}", user_id=f"user-{n % 19}", tool_name="t",
                                      total_cost_usd=Decimal("0.002"), price_version="bench", computed_at=now), now=now)
    book.apply_cost(CostEntry(id="hot", tenant="acme", time=now, kind=CostKind.TOOL, event_id="hot",
                              mcp_server_id="ms-hot", user_id="user-1", tool_name="t", total_cost_usd=Decimal("0.02"),
                              price_version="bench", computed_at=now), now=now)
    return [snapshot(book.budgets[b], s, now) for (b, _), s in sorted(book.states.items())]


def tool_calls(n: int = 200) -> list[bytes]:
    return [jsonutil.dumps({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                            "params": {"name": "search_issues", "arguments": {"q": f"bug {i}"}}}) for i in range(n)]


def prechecks(n: int = 200) -> list[bytes]:
    return [jsonutil.dumps({"client_id": "agent-1", "user_token": f"utok-{i}", "query": f"q {i}",
                            "context": {"user_id": "user-1", "mcp_servers": ["ms-hot"]}}) for i in range(n)]


def decision_micro(view_snaps: list[Any], rounds: int = 20000) -> dict[str, float]:
    """µs per decision in-process (the enforcer's own code, no HTTP)."""
    from gateledger.money.budgets import parse_budgets
    from gateledger.money.enforcement import EnforcementView, RequestScope

    view = EnforcementView()
    view.set_budgets(parse_budgets(budgets_file()))
    for s in view_snaps:
        view.update(s)
    now = datetime.now(UTC)
    out = {}
    for label, scope in (("allowed", RequestScope(tenant="acme", user="user-3", mcp_server="ms-4")),
                         ("blocked", RequestScope(tenant="acme", user="user-3", mcp_server="ms-hot"))):
        t0 = time.perf_counter()
        for _ in range(rounds):
            view.check(scope, now)
        out[f"{label}_us"] = round((time.perf_counter() - t0) / rounds * 1e6, 2)
    return out


async def run(seconds: float, runs: int, concurrency: int) -> dict[str, Any]:
    from gateledger.kafka import KafkaTarget, ensure_gateledger_topics, make_producer, wait_for_broker
    from gateledger.money.budgets import parse_budgets, save_budgets
    from gateledger.settings import KafkaSettings
    from gateledger.stack.broker import TansuBroker
    from gateledger.topics import Topic, topic_name

    now = datetime.now(UTC)
    snaps = snapshots(now)
    result: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "budgets": N_BUDGETS, "snapshots": len(snaps),
                              "concurrency": concurrency, "seconds": seconds, "runs": runs,
                              "decision_in_process": decision_micro(snaps)}
    with tempfile.TemporaryDirectory(prefix="gl-bench-enf-") as tmp:
        broker = TansuBroker(log_path=Path(tmp) / "broker.log")
        broker.start()
        try:
            await wait_for_broker(broker.bootstrap)
            kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
            target = KafkaTarget(broker.bootstrap, True, "bench.")
            await ensure_gateledger_topics(kafka, target)
            producer = make_producer(kafka, target, linger_ms=0)
            await producer.start()
            for s in snaps:
                await producer.send_and_wait(topic_name(Topic.BUDGET_STATE, "bench."),
                                             jsonutil.dumps(s.model_dump(mode="json")), key=s.key.encode())
            await producer.stop()
            budgets = Path(tmp) / "budgets.yaml"
            save_budgets(budgets, parse_budgets(budgets_file()))
            headers = {"X-Gateledger-Tenant": "acme", "X-Obot-User-Id": "user-3", "Content-Type": "application/json"}
            cases = [
                ("webhook_enforcement_off", "false", "/v1/obot/webhook", {"X-Obot-Mcp-Server-Id": "ms-4"}, tool_calls(), 200),
                ("webhook_enforcement_on_allowed", "true", "/v1/obot/webhook", {"X-Obot-Mcp-Server-Id": "ms-4"}, tool_calls(), 200),
                ("webhook_enforcement_on_blocked", "true", "/v1/obot/webhook", {"X-Obot-Mcp-Server-Id": "ms-hot"}, tool_calls(), 402),
                ("precheck_blocked_by_tap", "true", "/axonflow/api/policy/pre-check", {"X-Tenant-ID": "acme"}, prechecks(), 402),
            ]
            runs_of: dict[str, list[dict[str, Any]]] = {c[0]: [] for c in cases}
            # Both services run side by side and the cases alternate within each run, so the noise of
            # a shared machine falls on all of them alike.
            procs, urls = [], {}
            try:
                for enforce in ("false", "true"):
                    port = free_port()
                    env = {k: v for k, v in os.environ.items() if not k.startswith("GATELEDGER_")}
                    env.update(GATELEDGER_DATA_DIR=str(Path(tmp) / f"data-{enforce}"),
                               GATELEDGER_KAFKA_BOOTSTRAP_SERVERS=broker.bootstrap,
                               GATELEDGER_KAFKA_TANSU_WORKAROUNDS="true", GATELEDGER_TOPIC_PREFIX="bench.",
                               GATELEDGER_INGEST_PORT=str(port), GATELEDGER_MASKING_SALT="bench",
                               GATELEDGER_LOG_LEVEL="WARNING", GATELEDGER_BUDGETS_FILE=str(budgets),
                               GATELEDGER_INGEST_ENFORCE_BUDGETS=enforce,
                               GATELEDGER_INGEST_AXONFLOW_UPSTREAM_URL=f"http://127.0.0.1:{free_port()}")
                    procs.append(await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "gateledger_cli.main", "serve", "ingest", env=env,
                        stdout=asyncio.subprocess.DEVNULL,
                        stderr=open(Path(tmp) / f"ingest-{enforce}.log", "wb"),  # noqa: SIM115
                    ))
                    await asyncio.to_thread(wait_port, "127.0.0.1", port, 60)
                    urls[enforce] = f"http://127.0.0.1:{port}"
                await asyncio.sleep(2)  # the view catches up
                for enforce, url in urls.items():
                    await measure(url, batch_size=1, seconds=1.0, concurrency=4, path="/v1/obot/webhook",
                                  headers={**headers, "X-Obot-Mcp-Server-Id": "ms-4"}, bodies=tool_calls())  # warm-up
                for r in range(runs):
                    for name, enforce, path, extra, bodies, ok in (cases if r % 2 == 0 else cases[::-1]):  # ABBA
                        runs_of[name].append(await measure(urls[enforce], batch_size=1, seconds=seconds,
                                                           concurrency=concurrency, path=path,
                                                           headers={**headers, **extra}, bodies=bodies,
                                                           ok_status=ok))
            finally:
                for proc in procs:
                    proc.terminate()
                    await proc.wait()
        finally:
            broker.stop()
    for name, rs in runs_of.items():
        result[name] = {"requests_per_s_median": statistics.median(r["requests_per_s"] for r in rs),
                        "requests_per_s_runs": [r["requests_per_s"] for r in rs],
                        "p50_ms_median": statistics.median(r["latency_ms"]["p50"] for r in rs),
                        "statuses": rs[-1]["statuses"]}
    return result


def main() -> None:
    """CLI: print the measurement as JSON."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--concurrency", type=int, default=16)
    args = ap.parse_args()
    print(jsonutil.dumps_str(asyncio.run(run(args.seconds, args.runs, args.concurrency))))


if __name__ == "__main__":
    main()
