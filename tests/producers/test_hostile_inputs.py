"""A corpus of malformed and hostile inputs on every ingest route, through the real broker and sink into chDB.

Runs as deployed: ingest bearer tokens, webhook-filter secrets (the default filter and a named one scoped
by its URL's path) and the tap's tokens on; the AxonFlow tap's five recorded calls (pre-check, LLM-call
audit, ``/api/v1/decide``, MCP check-input and check-output) and the notifier's ``/alertmanager`` relay
beside the ingest routes. Per route at least 1,000 HTTP
requests (not records) from a seeded fuzzer (reproducible: the seed is in the test id): valid records
carrying hostile content (SQL and header injection strings, control characters, unicode, huge numbers
in free fields, deep nesting inside free-form objects, far-future timestamps), inputs that must be
refused (invalid UTF-8, broken JSON, wrong types, missing ids, nesting deeper than any parser takes,
records over the record limit, bodies over 10 MiB), random mutations of both, and requests whose
credentials are missing, wrong or odd (non-ASCII, invalid UTF-8), wrong content types, forged tenant
headers, a non-ASCII identity header and, on the scoped filter, URLs that name no filter. All are sent in a few large
concurrent runs to one ingest server with the sink running, then ClickHouse is checked once:

- no crash: no answer is a 5xx, the server still answers /healthz;
- both causes of 429 per ingest route: the flood's concurrency and a token over its grant's own rate;
- requests aiohttp's HTTP parser refuses (malformed request lines and headers) are 400 and counted in the
  coalesced dead letters as ``bad_request`` too, on every door;
- every refusal is a 4xx whose reason is one documented in docs/ingest.md ("Refusals");
- every valid record (each carries a unique marker) is answered as accepted and lands in
  ``raw_events`` exactly once;
- every refusal of an authenticated request is a dead letter with its reason, one for one; refusals
  before authentication are not (documented: the dead-letter topic is not writable by strangers);
- the AxonFlow tap, which passes the upstream's answer on, records every exchange exactly once, as an
  event or as a dead letter, checked per exchange by its marker (a lost and a duplicated exchange
  cannot cancel out); a token naming a tenant it may not speak for is refused (403) and dead-lettered;
- a forged tenant header never moves a record to another tenant;
- ``/alertmanager``: every notification answered 200 reached the webhook exactly once, every refusal
  of an authenticated request is a 400/413 with its reason and one dead letter, bad tokens are 401.

Cost: the server's masking of hostile content dominates (it grows with the characters of text), so the
limits are set small (a 200 kB record limit, a 1 MiB notification limit): the cases over a limit cost
little, and the checks are the same code.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, ClientTimeout, TCPConnector
from aiohttp.test_utils import TestServer

from gateledger.masking import Masker
from gateledger.settings import Settings
from producers.ingest.settings import IngestSettings
from tests.producers.hostile_corpus import (
    ADDRESS,
    AM_BODY_LIMIT,
    AM_TOKEN,
    FLOOD_ADDRESS,
    FLOOD_SLOTS,
    FLOOD_TOKENS,
    MARKER,
    PER_ROUTE,
    RATE_BURST,
    RATE_PER_S,
    RATE_REQUESTS,
    RATE_TOKENS,
    RECORD_LIMIT,
    ROUTES,
    SCOPED,
    SCOPED_SECRET,
    SCOPED_TENANT,
    SECRET,
    SEED,
    SLOW_BODY_S,
    TAP_TOKEN,
    TAP_TOKEN_ACME,
    TOKEN,
    TOKEN_ACME,
    AlertReceiver,
    TolerantAxonFlow,
    corpus,
    flood_credentials,
    marker,
    valid_item,
)
from tests.producers.ingestutil import ingest_client
from tests.rawhttp import raw_post, raw_request

# ~12,000 requests and the sink landing them: minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(900)]


def documented_reasons() -> set[str]:
    """The reason codes of the "Refusals" table of docs/ingest.md."""
    text = (Path(__file__).parents[2] / "docs" / "ingest.md").read_text()
    table = text.split("## Refusals", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", table, re.M)}


DOCUMENTED_REASONS = documented_reasons()


async def _post(session: ClientSession, base: str, item: dict[str, Any], path: str, local: str) -> None:
    if "raw" in item:  # bytes that are not a well-formed HTTP request
        item["status"], item["answer"] = await raw_request(base, item["raw"], local_addr=local)
        return
    if "raw_headers" in item:  # header bytes no client library sends, or a body that never finishes
        item["status"], item["answer"] = await raw_post(base, path, item["body"], item["raw_headers"],
                                                        local_addr=local, declared=item.get("declared"))
        return
    async with session.post(base + path, data=item["body"], headers=item["headers"]) as resp:
        item["status"] = resp.status
        raw = await resp.read()
        try:
            item["answer"] = orjson.loads(raw)
        except orjson.JSONDecodeError:
            item["answer"] = {"_text": raw[:200].decode(errors="replace")}


async def _send_all(base: str, items: list[dict[str, Any]], route: str) -> None:
    sem = asyncio.Semaphore(16)
    local = ADDRESS[route]
    async with ClientSession(timeout=ClientTimeout(total=120), connector=TCPConnector(local_addr=(local, 0))) as session:

        async def one(item: dict[str, Any]) -> None:
            async with sem:
                await _post(session, base, item, item.get("path", ROUTES[route]["path"]), local)

        await asyncio.gather(*(one(x) for x in items))


async def _flood(base: str, route: str, start: int) -> list[dict[str, Any]]:
    """The route's flood: FLOOD_SLOTS bodies that never finish hold every slot of their caller until the
    body-read timeout (408); meanwhile rounds of valid requests, until the concurrency limit answers 429."""
    path, local = ROUTES[route]["path"], FLOOD_ADDRESS[route]
    rng = random.Random(SEED + start)
    head = b'{"pad": "'
    raw_headers = [(b"Content-Type", ROUTES[route]["ctype"].encode()),
                   *((k.encode(), v.encode()) for k, v in flood_credentials(route, head).items())]
    holders = [{"body": head, "raw_headers": raw_headers, "declared": 64 * 1024, "slow": True, "valid": [],
                "must_refuse": True, "records": 0, "marker": ""} for _ in range(FLOOD_SLOTS)]
    flood: list[dict[str, Any]] = []
    async with ClientSession(timeout=ClientTimeout(total=120), connector=TCPConnector(local_addr=(local, 0))) as session:
        held = [asyncio.create_task(_post(session, base, x, path, local)) for x in holders]
        while not any(x["status"] == 429 for x in flood) and not all(t.done() for t in held):
            await asyncio.sleep(0.05)  # not a timing assertion: rounds go on until the limit shows
            # More at once than the caller has slots: whatever the holders hold, some are refused.
            batch = [valid_item(route, marker(start + len(flood) + i), rng, flood=True)
                     for i in range(FLOOD_SLOTS + 5)]
            await asyncio.gather(*(_post(session, base, x, path, local) for x in batch))
            flood += batch
        await asyncio.gather(*held)
    rate: list[dict[str, Any]] = []
    if route in RATE_TOKENS:  # a token over its grant's own rate, all at once
        rate = [valid_item(route, marker(start + 50_000 + i), rng, rate=True) for i in range(RATE_REQUESTS)]
        async with ClientSession(timeout=ClientTimeout(total=120),
                                 connector=TCPConnector(local_addr=(local, 0))) as session:
            await asyncio.gather(*(_post(session, base, x, path, local) for x in rate))
    return holders + flood + rate


def _refusal_reasons(item: dict[str, Any], route: str) -> list[str | None]:
    if item.get("malformed"):  # aiohttp's own plain-text 400 / 417: counted as bad_request (docs/ingest.md)
        return ["bad_request"] if item["status"] in (400, 417) else [f"answered {item['status']}"]
    ans = item["answer"] if isinstance(item.get("answer"), dict) else {}
    if "rejected" in ans:
        return [r.get("reason") for r in ans["rejected"]]
    if route.startswith("tap") and "reason" not in ans:
        return []  # AxonFlow's own answer, passed on (and recorded as the exchange it was)
    return [ans.get("reason")] if 400 <= item["status"] < 500 else []


def _refused_requests(items: list[dict[str, Any]], route: str) -> Counter[tuple[str, int]]:
    """Requests refused as a whole, per (reason, status): each must be in the dead letters' counts."""
    return Counter(("bad_request" if x.get("malformed") else x["answer"].get("reason"), x["status"])
                   for x in items if 400 <= x["status"] < 500 and "rejected" not in x["answer"]
                   and (not route.startswith("tap") or "reason" in x["answer"] or x.get("malformed")))


def _check_flood(route: str, items: list[dict[str, Any]]) -> list[str]:
    """The slow bodies are 408 body_timeout (or 429 when they found the slots taken), the flood 429 or served."""
    slow = Counter((x["status"], x["answer"].get("reason")) for x in items if x.get("slow"))
    flood = Counter((x["status"], x["answer"].get("reason")) for x in items if x.get("flood"))
    problems = []
    if not slow[(408, "body_timeout")] or set(slow) - {(408, "body_timeout"), (429, "concurrency_limited")}:
        problems.append(f"{route}: slow bodies answered {dict(slow)}")
    if not flood[(429, "concurrency_limited")] or {s for s, _ in flood} - {200, 429}:
        problems.append(f"{route}: the flood answered {dict(flood)}")
    rate = Counter((x["status"], x["answer"].get("reason") if x["status"] == 429 else None)
                   for x in items if x.get("rate"))
    limited = (429, "rate_limited")
    if route in RATE_TOKENS and (not rate[limited] or set(rate) - {(200, None), limited}):
        problems.append(f"{route}: a token over its own rate answered {dict(rate)}")
    for x in items:
        if (x.get("flood") or x.get("rate")) and x["status"] == 429:
            x["valid"] = []  # refused: must land nowhere but in the dead letters' counts
    return problems


def test_hostile_corpus_on_every_route_crashes_nothing_loses_nothing(settings: Settings, ch_client,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.sinks.conftest import fast_sink, running_notifier, running_sink, wait_caught_up

    monkeypatch.setenv("GATELEDGER_KAFKA_SESSION_TIMEOUT_MS", "3000")
    monkeypatch.setenv("GATELEDGER_KAFKA_HEARTBEAT_INTERVAL_MS", "500")
    settings = Settings()
    db = settings.clickhouse.database
    rng = random.Random(SEED)
    plan = {route: corpus(route, rng, k * 1_000_000) for k, route in enumerate(ROUTES)}
    upstream, receiver = TolerantAxonFlow(), AlertReceiver()

    async def main() -> None:
        async with TestServer(upstream.app(), host="127.0.0.1") as up, \
                TestServer(receiver.app(), host="127.0.0.1") as hook:
            # As deployed: relay tokens (one for any tenant, one locked to acme), a signed default filter
            # and a named one scoped by its URL, the tap's tokens, Alertmanager's bearer token.
            ingest = IngestSettings(axonflow_upstream_url=str(up.make_url("")), publish_timeout_s=8.0,
                                    tokens={TOKEN: {"tenant": "*"}, TOKEN_ACME: {"tenant": "acme"},
                                            **{t: {"tenant": "*"} for t in FLOOD_TOKENS.values()},
                                            **{t: {"tenant": "*", "rate_limit_per_s": RATE_PER_S,
                                                   "rate_limit_burst": RATE_BURST}
                                               for t in RATE_TOKENS.values()}},
                                    webhook_secret=SECRET,
                                    webhook_filters={SCOPED: {"secret": SCOPED_SECRET, "tenant": SCOPED_TENANT}},
                                    axonflow_tokens={TAP_TOKEN: ["*"], TAP_TOKEN_ACME: ["acme"]},
                                    max_record_bytes=RECORD_LIMIT, max_concurrent_per_caller=FLOOD_SLOTS,
                                    body_read_timeout_s=SLOW_BODY_S)
            hooks = [{"name": "fz", "url": str(hook.make_url("/hook"))}]
            async with running_sink(settings, fast_sink(batch_max_rows=2000)) as state:
                async with ingest_client(settings, ingest) as http, \
                        running_notifier(settings, hooks, alertmanager_token=AM_TOKEN,
                                         alertmanager_max_body_bytes=AM_BODY_LIMIT,
                                         alertmanager_max_concurrent=FLOOD_SLOTS,
                                         alertmanager_body_read_timeout_s=SLOW_BODY_S) as notifier:
                    base = str(http.make_url("")).rstrip("/")
                    # Every route's flood beside the corpus (its own caller: no effect on the corpus's limits).
                    floods = {route: asyncio.create_task(_flood(notifier if route == "alertmanager" else base, route,
                                                                k * 1_000_000 + 900_000))
                              for k, route in enumerate(ROUTES)}
                    for route, items in plan.items():
                        if route == "alertmanager":
                            await floods[route]  # one token, one caller: its flood is over before its corpus
                        await _send_all(notifier if route == "alertmanager" else base, items, route)
                        r = await http.get("/healthz")
                        assert r.status == 200, f"the server stopped answering after {route}"
                    for route, task in floods.items():
                        plan[route].extend(await task)
                # Both servers stopped: the refusals they were still counting are written now.
                await wait_caught_up(settings, state["sink"], timeout_s=180)

    asyncio.run(main())

    problems: list[str] = []
    for route, items in plan.items():
        problems += _check_flood(route, items)
        undocumented = Counter(r for x in items for r in _refusal_reasons(x, route) if r not in DOCUMENTED_REASONS)
        if undocumented:
            problems.append(f"{route}: refusals without a documented reason: {dict(undocumented)}")
        if route == "alertmanager":
            continue  # checked on its own below
        statuses = Counter(x["status"] for x in items)
        assert len(items) >= PER_ROUTE, route  # requests, not records
        fives = [x for x in items if x["status"] >= 500]
        if fives:
            problems.append(f"{route}: {len(fives)} answers >= 500, e.g. {fives[0]['status']} "
                            f"{fives[0]['answer']} for {fives[0]['body'][:120]!r}")
        for x in items:
            reason = x["answer"].get("reason") if isinstance(x["answer"], dict) else None
            if x.get("malformed") and (x["status"] not in (400, 417) or "reason" in x["answer"]):
                problems.append(f"{route}: a malformed request answered {x['status']} {x['answer']} "
                                f"for {x['raw'][:80]!r}")
            if x.get("slow") or x.get("flood") or x.get("rate") or x.get("malformed"):
                continue  # checked above
            if x.get("not_found") and (x["status"], reason) != (404, "not_found"):
                problems.append(f"{route}: a filter URL naming nothing answered {x['status']} {x['answer']}")
            if x.get("odd_identity") and (x["status"], reason) != (400, "bad_header"):
                problems.append(f"{route}: a non-ASCII identity header answered {x['status']} {x['answer']}")
            if x.get("forged") == "refused" and (x["status"], reason) != (403, "tenant_not_allowed"):
                problems.append(f"{route}: a token naming a tenant it may not answered {x['status']} {x['answer']}")
            if x.get("unauthenticated") and (x["status"], x["answer"].get("reason")) not in (
                    (401, "unauthenticated"), (401, "bad_header"), (401, "bad_signature")) \
                    and not route.startswith("tap"):
                problems.append(f"{route}: bad credentials answered {x['status']} {x['answer']}")
                break
            if route.startswith("tap"):
                continue
            if x["valid"] and (x["status"] != 200 and not (x["status"] == 400 and "rejected" in x["answer"])):
                problems.append(f"{route}: valid records answered {x['status']} {str(x['answer'])[:300]}")
                break
            if x["must_refuse"] and not x.get("unauthenticated") and not x.get("not_found") \
                    and x["status"] not in (400, 413):
                problems.append(f"{route}: refused input answered {x['status']} {x['answer']} for {x['body'][:300]!r}")
                break
            if x.get("too_large") and x["status"] != 413:
                problems.append(f"{route}: an 11 MB body answered {x['status']}")
                break
            if x.get("record_too_large") and "too_large" not in _refusal_reasons(x, route):
                problems.append(f"{route}: a record over the record limit answered {x['status']} {x['answer']}")
                break
        print(route, dict(statuses))
    assert not problems, "\n".join(problems)

    # -- ClickHouse, once ----------------------------------------------------------------------
    rows = ch_client.query(f"SELECT id, data, source, type, tenant FROM `{db}`.raw_events FINAL").result_rows
    found: Counter[str] = Counter()
    tenants: dict[str, set[str]] = {}
    for _id, data, _src, _type, tenant in rows:
        for m in set(MARKER.findall(data)):
            found[m] += 1
            tenants.setdefault(m, set()).add(tenant)
    letters = ch_client.query(f"SELECT id, stage, origin, reason, original, http_status, caller, count, "
                              f"first_at IS NOT NULL FROM `{db}`.dead_letters FINAL").result_rows
    ingest_letters = [r for r in letters if r[1] == "ingest"]
    other_letters = [r for r in letters if r[1] not in ("ingest", "notify")]
    assert all(r[3] for r in letters), "a dead letter without a reason"
    door_letters = [r for r in letters if r[2].startswith(("http:", "tap:"))]
    assert {r[3] for r in door_letters} <= DOCUMENTED_REASONS, Counter(r[3] for r in door_letters)
    lettered: Counter[str] = Counter()
    for r in letters:
        for m in set(MARKER.findall(r[4])):
            lettered[m] += 1

    # Every request refused as a whole, on every door, is in the dead letters: per route (its callers'
    # addresses), reason and status, the letters' counts add up to the refused requests, one for one. Bodiless
    # refusals (401, 408, 429, strangers' odd headers, URLs naming nothing) are coalesced per caller and window.
    counted: dict[str, Counter[tuple[str, int]]] = {}
    for r in letters:
        if r[5] is not None:
            counted.setdefault(r[6], Counter())[(r[3], r[5])] += r[7]
    for route, items in plan.items():
        got = counted.get(ADDRESS[route], Counter()) + counted.get(FLOOD_ADDRESS[route], Counter())
        want = _refused_requests(items, route)
        assert got == want, f"{route}: dead letters count {dict(got)}, refused requests were {dict(want)}"
        assert want[("body_timeout", 408)] and want[("concurrency_limited", 429)], (route, dict(want))
        assert want[("bad_request", 400)] and want[("bad_request", 417)], (route, dict(want))
        assert want[("rate_limited", 429)] or route not in RATE_TOKENS, (route, dict(want))
    assert sum(r[7] for r in letters if r[8]) > len([r for r in letters if r[8]]), "nothing was coalesced"

    for route, items in plan.items():
        # A forged tenant header never moves a record to another tenant.
        moved = [(x["marker"], tenants[x["marker"]]) for x in items
                 if x.get("forged") not in (None, "refused") and tenants.get(x["marker"], {x["forged"]}) != {x["forged"]}]
        assert not moved, f"{route}: records landed under a tenant their caller may not name: {moved[:3]}"
        if route.startswith("tap") or route == "alertmanager":
            continue
        valid = [m for x in items for m in x["valid"]]
        missing = [m for m in valid if found[m] == 0 and lettered[m] == 0]
        twice = [m for m in valid if found[m] > 1]
        assert not missing, f"{route}: {len(missing)} accepted valid records landed nowhere, e.g. {missing[:3]}"
        assert not twice, f"{route}: landed more than once: {twice[:3]}"
        in_sink_letters = [m for m in valid if found[m] == 0]
        assert not in_sink_letters, f"{route}: valid records dead-lettered by the sink: {in_sink_letters[:3]}"
        # Refused before authentication or before the body was read: its body is kept nowhere.
        strangers = [x["marker"] for x in items
                     if x.get("unauthenticated") or x.get("not_found") or x.get("malformed")
                     or (x.get("odd_identity") and route.startswith("webhook")) or x["status"] == 429]
        assert not [m for m in strangers if found[m] or lettered[m]], f"{route}: a stranger's request was kept"
    # Every record refused inside a batch is one dead letter of its own (each refused input is unique).
    per_record = [r for r in ingest_letters if r[2].startswith("http:") and r[5] is None]
    rejected = sum(len(x["answer"].get("rejected") or []) for route, items in plan.items()
                   if not route.startswith("tap") and route != "alertmanager" for x in items)
    assert len(per_record) == rejected, (len(per_record), rejected, Counter(r[3] for r in per_record))
    # The tap, per exchange: every request it answered is recorded exactly once, as an event or as a
    # dead letter, found by the marker it carried (a lost and a duplicated exchange cannot cancel out).
    tap_letters = [r for r in ingest_letters if r[2].startswith("tap:") and not r[8]]
    tap_found: Counter[str] = Counter()
    for _id, data, _src, typ, _tenant in rows:
        if typ.startswith("axonflow"):
            for m in set(MARKER.findall(data)):
                tap_found[m] += 1
    for r in tap_letters:
        for m in set(MARKER.findall(r[4])):
            tap_found[m] += 1
    # A marker that ended up inside a secret's value (a body cut off in `"user_token":"utok-...<marker>`)
    # is masked away with the secret, as it must be: such an exchange is matched by count instead, against
    # the tap's dead letters that carry no marker at all.
    masker = Masker(salt=b"hostile")
    unmarked_letters = sum(1 for r in tap_letters if not MARKER.findall(r[4]))
    masked_away = 0
    for route, items in plan.items():
        if not route.startswith("tap"):
            continue
        # A non-ASCII identity header is refused by the ingest's header check before the tap sees it
        # (400 bad_header, dead-lettered by the ingest for a known token): never an exchange.
        refused_early = [x["marker"] for x in items if x.get("odd_identity") and tap_found[x["marker"]]]
        assert not refused_early, f"{route}: a request refused for its headers was recorded: {refused_early[:3]}"
        answered = [x for x in items if x["status"] not in (401, 408, 413, 429) and not x.get("unauthenticated")
                    and not x.get("odd_identity") and not x.get("slow") and not x.get("malformed")]
        assert len(answered) >= PER_ROUTE * 0.85, (route, len(answered))
        hidden = [x for x in answered if tap_found[x["marker"]] == 0
                  and x["marker"] not in masker.mask_text(x["body"].decode("utf-8", "replace"))]
        masked_away += len(hidden)
        lost = [(x["marker"], x["status"], str(x["answer"])[:200], len(x["body"])) for x in answered
                if tap_found[x["marker"]] == 0 and x not in hidden]
        doubled = [x["marker"] for x in answered if tap_found[x["marker"]] > 1]
        assert not lost, f"{route}: {len(lost)} exchanges recorded nowhere, e.g. {lost[:3]}"
        assert not doubled, f"{route}: {len(doubled)} exchanges recorded twice, e.g. {doubled[:3]}"
    assert unmarked_letters >= masked_away, (unmarked_letters, masked_away)
    assert not [r for r in other_letters if r[1] == "sink" and r[3] == ""]
    _check_alertmanager(plan["alertmanager"], receiver, letters)


def _check_alertmanager(items: list[dict[str, Any]], receiver: AlertReceiver, letters: list[tuple]) -> None:
    """Every answer clear, every notification answered 200 relayed once, every refusal one dead letter."""
    assert len(items) >= PER_ROUTE
    notify = [r for r in letters if r[1] == "notify" and r[2] == "http:/alertmanager" and not r[8]]
    lettered: Counter[str] = Counter(m for r in notify for m in set(MARKER.findall(r[4])))
    problems = []
    for x in items:
        status, ans = x["status"], x["answer"] if isinstance(x["answer"], dict) else {}
        m = x["marker"]
        if x.get("slow") or (x.get("flood") and status == 429) or x.get("malformed"):
            continue  # checked with the other routes' (and counted in the dead letters)
        if status >= 500:
            problems.append(f"answered {status} {ans}")
        elif x.get("unauthenticated"):
            if (status, ans.get("reason")) != (401, "unauthenticated") or lettered[m]:
                problems.append(f"bad credentials answered {status} {ans} (lettered {lettered[m]})")
        elif status == 200:
            if set(ans.get("delivered", []) + ans.get("duplicates", [])) != {"fz"} or receiver.markers[m] != 1:
                problems.append(f"a notification answered 200 {ans} reached the webhook {receiver.markers[m]} times")
        elif (status, ans.get("reason")) in ((400, "invalid_alertmanager_payload"), (413, "too_large")):
            if lettered[m] != 1 or receiver.markers[m]:
                problems.append(f"a refusal {status} {ans} has {lettered[m]} dead letters")
        else:
            problems.append(f"answered {status} {ans} for {x['body'][:200]!r}")
        if x["must_refuse"] and not x.get("unauthenticated") and status not in (400, 413):
            problems.append(f"refused input answered {status} {ans} for {x['body'][:200]!r}")
        if x.get("too_large") and status != 413:
            problems.append(f"a body over the limit answered {status}")
    assert not problems, f"/alertmanager: {len(problems)} problems, e.g. " + "\n".join(problems[:5])
    assert len(notify) == sum(1 for x in items if x["status"] in (400, 413) and not x.get("malformed")), \
        "one dead letter per refusal"
