"""A corpus of malformed and hostile inputs on every ingest route, through the real broker and sink into chDB.

Runs as deployed: ingest bearer tokens and webhook-filter secrets on. Per route at least 1,000 HTTP
requests (not records) from a seeded fuzzer (reproducible: the seed is in the test id): valid records
carrying hostile content (SQL and header injection strings, control characters, unicode, huge numbers
in free fields, deep nesting inside free-form objects, far-future timestamps), inputs that must be
refused (invalid UTF-8, broken JSON, wrong types, missing ids, nesting deeper than any parser takes,
records over the record limit, bodies over 10 MiB), random mutations of both, and requests whose
credentials are missing, wrong or odd (non-ASCII, invalid UTF-8). All are sent in a few large
concurrent runs to one ingest server with the sink running, then ClickHouse is checked once:

- no crash: no answer is a 5xx, the server still answers /healthz;
- every refusal is a 4xx whose reason is one documented in docs/ingest.md ("Refusals");
- every valid record (each carries a unique marker) is answered as accepted and lands in
  ``raw_events`` exactly once;
- every refusal of an authenticated request is a dead letter with its reason, one for one; refusals
  before authentication are not (documented: the dead-letter topic is not writable by strangers);
- the AxonFlow tap, which passes the upstream's answer on, records every exchange exactly once, as an
  event or as a dead letter, checked per exchange by its marker (a lost and a duplicated exchange
  cannot cancel out).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import re
import string
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, ClientTimeout, web
from aiohttp.test_utils import TestServer

from gateledger.masking import Masker
from gateledger.settings import Settings
from producers.ingest.settings import IngestSettings
from tests import samples
from tests.producers.ingestutil import ingest_client
from tests.rawhttp import raw_post

# ~7,000 requests and the sink landing them: minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.fault, pytest.mark.slow, pytest.mark.timeout(900)]

SEED = 20261121
PER_ROUTE = 1000  # HTTP requests per route
TOKEN = "tok-hostile-relay"
TAP_TOKEN = "tok-hostile-tap"  # any tenant, as the relay token
SECRET = "whsec-hostile"
MARKER = re.compile(r"fzm[a-z]+")


def documented_reasons() -> set[str]:
    """The reason codes of the "Refusals" table of docs/ingest.md."""
    text = (Path(__file__).parents[2] / "docs" / "ingest.md").read_text()
    table = text.split("## Refusals", 1)[1].split("\n## ", 1)[0]
    return {m.group(1) for m in re.finditer(r"^\| `([a-z_]+)` \|", table, re.M)}


DOCUMENTED_REASONS = documented_reasons()

HOSTILE_STRINGS = [
    "'; DROP TABLE raw_events; --", "\" OR 1=1 --", "1); SELECT * FROM system.users; --",
    "{tenant:String}", "$db.raw_events", "\r\nX-Injected: 1\r\n\r\n<html>", "%0d%0aSet-Cookie: a=b",
    "\u0000\u0001\u0007", "\u202e\u0645\u0631\u062d\u0628\u0627", "🦄" * 50, "A" * 20_000, "\\", "\\u0000",
    "${jndi:ldap://x/a}", "<script>alert(1)</script>", "../../../../etc/passwd", "null", "",
]


def marker(i: int) -> str:
    """A unique, letters-only marker (masking leaves letters alone; digit runs could look like phone numbers)."""
    s = ""
    i += 26 ** 4
    while i:
        i, r = divmod(i, 26)
        s = string.ascii_lowercase[r] + s
    return "fzm" + s


def deep(depth: int, leaf: Any = 1) -> Any:
    v = leaf
    for _ in range(depth):
        v = {"n": v}
    return v


# -- per route: a valid record with a marker, and how its fields may be broken --------------------------


def shim_record(m: str, rng: random.Random) -> dict[str, Any]:
    return samples.obot_shim(requestID=m, sessionID=f"sess-{m}")


def cloudevent(m: str, rng: random.Random) -> dict[str, Any]:
    return samples.cloudevent(id=m)


def webhook(m: str, rng: random.Random) -> dict[str, Any]:
    return samples.webhook_message(id=m)


def obot_llm(m: str, rng: random.Random) -> dict[str, Any]:
    return samples.obot_llm(id=m)


def precheck_request(m: str, rng: random.Random) -> dict[str, Any]:
    return samples.precheck()["request"] | {"query": f"summarize {m}"}


def audit_request(m: str, rng: random.Random) -> dict[str, Any]:
    return samples.llm_audit()["request"] | {"context_id": m}


def hostile_but_valid(rec: dict[str, Any], m: str, rng: random.Random, free: str) -> dict[str, Any]:
    """The record with hostile content where the format allows free content (``free``: a free-form field)."""
    rec = orjson.loads(orjson.dumps(rec))
    kind = rng.randrange(5)
    h = rng.choice(HOSTILE_STRINGS)
    if kind == 0:
        rec[free] = {"text": h + m, "k": h}
    elif kind == 1:
        rec[free] = {"n": 10**18, "f": 1e308, "neg": -(2**63), m: [h] * 3}
    elif kind == 2:
        rec[free] = deep(rng.randrange(20, 200), m)
    elif kind == 3:
        rec[free] = {m: h, "unicode": "\u00e9\u4e2d\u0416", "ctl": "\t\b\f"}
    else:
        rec[free] = {"list": [m, h, None, True, [], {}]}
    return rec


def broken(rec: dict[str, Any], m: str, rng: random.Random, required: list[str]) -> bytes:
    """Bytes that must be refused: each carries the marker so every refusal is its own dead letter."""
    kind = rng.randrange(7)
    if kind == 0:  # invalid UTF-8 inside a JSON string
        return b'{"id": "' + m.encode() + b'\xff\xfe\xc3\x28", "x": 1}'
    if kind == 1:  # truncated
        b = orjson.dumps(rec)
        return b[: rng.randrange(1, len(b) - 1)] + m.encode()
    if kind == 2:  # nesting deeper than any JSON parser accepts
        d = rng.randrange(2000, 50_000)
        return b"[" * d + m.encode() + b"]" * d
    if kind == 3:  # NaN / Infinity are not JSON
        return b'{"id": "' + m.encode() + b'", "v": NaN}'
    if kind == 4:  # a required field of the wrong type
        r = dict(rec)
        r[rng.choice(required)] = rng.choice([[m], {"m": m}])  # numbers could be epoch times: lenient, valid
        return orjson.dumps(r)
    if kind == 5:  # a required field null (missing ones are in the random mutations: some are optional)
        r = dict(rec)
        r[rng.choice(required)] = None
        r["_m"] = m
        return orjson.dumps(r)
    return b"\x00\x01\x02 not json " + m.encode()


def random_mutation(rec: dict[str, Any], m: str, rng: random.Random) -> bytes:
    """Anything: the server decides; the accounting must still hold."""
    r = orjson.loads(orjson.dumps(rec))
    keys = list(r)
    for _ in range(rng.randrange(1, 4)):
        k = rng.choice(keys)
        r[k] = rng.choice([None, "", 0, -1, 2**64 - 1, 10**30 if rng.random() < 0.3 else 3, rng.choice(HOSTILE_STRINGS),
                           "2999-12-31T23:59:59Z", "1969-12-31T23:59:59Z", "2100-01-01T00:00:00+14:00", [], {},
                           deep(rng.randrange(1, 300))])
    r["_m"] = m
    try:
        return orjson.dumps(r)
    except orjson.JSONEncodeError:  # an int beyond 64 bits: write it as JSON text
        return repr(r).encode()


ROUTES: dict[str, dict[str, Any]] = {
    "shim": {"path": "/api/mcp-audit-logs", "make": shim_record, "free": "requestBody", "array": True,
             "required": ["createdAt", "subject"], "ctype": "application/json"},
    "cloudevents-structured": {"path": "/v1/cloudevents", "make": cloudevent, "free": "data", "array": False,
                               "required": ["id", "source", "type"], "ctype": "application/cloudevents+json"},
    "cloudevents-batch": {"path": "/v1/cloudevents", "make": cloudevent, "free": "data", "array": True,
                          "required": ["id", "source", "type"], "ctype": "application/cloudevents-batch+json"},
    "webhook": {"path": "/v1/obot/webhook", "make": webhook, "free": "params", "array": False,
                "required": ["method", "jsonrpc"], "ctype": "application/json"},
    "generic": {"path": "/v1/ingest/obot-llm", "make": obot_llm, "free": "requestBody", "array": True,
                "required": ["id"], "ctype": "application/json"},  # obot-llm takes a null createdAt
    "tap-precheck": {"path": "/axonflow/api/policy/pre-check", "make": precheck_request, "free": "context",
                     "array": False, "required": ["query", "client_id"], "ctype": "application/json"},
    "tap-audit": {"path": "/axonflow/api/audit/llm-call", "make": audit_request, "free": "metadata", "array": False,
                  "required": ["context_id"], "ctype": "application/json"},
}


def credentials(route: str, body: bytes) -> dict[str, str]:
    """What an honest caller of the route sends: the bearer token, or the filter's signature."""
    if ROUTES[route]["path"].startswith("/v1/obot/webhook"):
        return {"X-Obot-Signature-256": "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()}
    if ROUTES[route]["path"].startswith("/axonflow/"):
        # The tap authenticates its callers by its own tokens (X-Gateledger-Token), not the ingest's.
        return {"Authorization": f"Bearer {TOKEN}", "X-Gateledger-Token": TAP_TOKEN}
    return {"Authorization": f"Bearer {TOKEN}"}


ODD = ["Bearer t\u00f6k\u00e9n", "Bearer \udcff\udcfe", "\u2603", "Bearer " + "A" * 5000, "bearer", "Basic x", ""]


def refused_credentials(route: str, body: bytes, rng: random.Random) -> list[tuple[bytes, bytes]]:
    """Raw header bytes of a request whose credentials are missing, wrong or odd (must be 401)."""
    name = "X-Obot-Signature-256" if ROUTES[route]["path"].startswith("/v1/obot/webhook") else "Authorization"
    value = rng.choice(ODD + ["Bearer wrong-token", "sha256=" + "0" * 64])
    raw = value.encode("utf-8", "surrogateescape")
    return [(b"Content-Type", ROUTES[route]["ctype"].encode())] + ([(name.encode(), raw)] if raw else [])


def corpus(route: str, rng: random.Random, start: int) -> list[dict[str, Any]]:
    """[{body, headers | raw_headers, valid: marker list, must_refuse, records, marker}] for one route."""
    spec = ROUTES[route]
    out: list[dict[str, Any]] = []
    i = start

    def next_marker() -> str:
        nonlocal i
        i += 1
        return marker(i)

    def add(body: bytes, valid: list[str], must_refuse: bool, records: int, m: str, **extra: Any) -> None:
        headers = {"Content-Type": spec["ctype"], **credentials(route, body), **extra.pop("headers", {})}
        out.append({"body": body, "headers": headers, "valid": valid, "must_refuse": must_refuse,
                    "records": records, "marker": m, **extra})

    while len(out) < PER_ROUTE:
        kind = rng.random()
        if spec["array"] and kind < 0.3:
            # one batch: valid hostile records mixed with records broken inside a valid array
            n = rng.randrange(5, 40)
            recs, valid = [], []
            for _ in range(n):
                m = next_marker()
                rec = spec["make"](m, rng)
                if rng.random() < 0.7:
                    recs.append(hostile_but_valid(rec, m, rng, spec["free"]))
                    valid.append(m)
                else:
                    bad = dict(rec)
                    bad[rng.choice(spec["required"])] = [m]
                    recs.append(bad)
            add(orjson.dumps(recs), valid, False, n, valid[0] if valid else m)
        elif kind < 0.55:
            m = next_marker()
            rec = hostile_but_valid(spec["make"](m, rng), m, rng, spec["free"])
            body = orjson.dumps([rec] if spec["array"] else rec)
            extra = {}
            if rng.random() < 0.3:
                extra = {"X-Gateledger-Tenant": rng.choice(["acme", "globex"]),
                         "traceparent": rng.choice(["00-zz-zz-01", "garbage", "00-" + "f" * 32 + "-" + "0" * 16 + "-01"]),
                         # the client library itself refuses CR/LF and control characters in headers
                         "X-Request-ID": "".join(c for c in rng.choice(HOSTILE_STRINGS)[:200] if " " <= c <= "~") or "x"}
            add(body, [m], False, 1, m, headers=extra)
        elif kind < 0.78:
            m = next_marker()
            add(broken(spec["make"](m, rng), m, rng, spec["required"]), [], True, 1, m)
        elif kind < 0.92:
            m = next_marker()
            body = random_mutation(spec["make"](m, rng), m, rng)
            add(b"[" + body + b"]" if spec["array"] else body, [], False, 1, m)
        else:
            m = next_marker()
            body = orjson.dumps([spec["make"](m, rng)] if spec["array"] else spec["make"](m, rng))
            out.append({"body": body, "raw_headers": refused_credentials(route, body, rng), "valid": [],
                        "must_refuse": True, "records": 1, "marker": m, "unauthenticated": True})
    # a record over the record limit inside a body under the body limit, and a body over the body limit
    m = next_marker()
    big = hostile_but_valid(spec["make"](m, rng), m, rng, spec["free"])
    big[spec["free"]] = {"pad": m + " " + "x" * 1_200_000}  # a space ends the marker
    add(orjson.dumps([big] if spec["array"] else big), [], True, 1, m, record_too_large=True)
    m = next_marker()
    add(b'{"pad": "' + m.encode() + b" " + b"x" * (10 * 1024 * 1024 + 10) + b'"}', [], True, 1, m, too_large=True)
    return out


class TolerantAxonFlow:
    """An upstream that answers anything: JSON objects get AxonFlow-shaped answers, the rest 400."""

    def __init__(self) -> None:
        self.n = 0

    async def precheck(self, request: web.Request) -> web.Response:
        self.n += 1
        try:
            body = await request.json()
        except Exception:  # noqa: BLE001 - hostile bytes: answer as a web server would
            return web.json_response({"error": "bad request"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "bad request"}, status=400)
        return web.json_response({"context_id": f"ctx-fz-{self.n}", "approved": True, "policies": [],
                                  "expires_at": "2030-01-01T00:00:00Z"})

    async def audit(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except Exception:  # noqa: BLE001
            return web.json_response({"error": "bad request"}, status=400)
        if not isinstance(body, dict):
            return web.json_response({"error": "bad request"}, status=400)
        return web.json_response({"success": True, "audit_id": "aud-x"})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/policy/pre-check", self.precheck)
        app.router.add_post("/api/audit/llm-call", self.audit)
        return app


async def _send_all(base: str, items: list[dict[str, Any]], path: str) -> None:
    sem = asyncio.Semaphore(16)
    async with ClientSession(timeout=ClientTimeout(total=120)) as session:

        async def one(item: dict[str, Any]) -> None:
            if "raw_headers" in item:  # header bytes no client library sends
                async with sem:
                    item["status"], item["answer"] = await raw_post(base, path, item["body"], item["raw_headers"])
                return
            async with sem, session.post(base + path, data=item["body"], headers=item["headers"]) as resp:
                item["status"] = resp.status
                raw = await resp.read()
                try:
                    item["answer"] = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    item["answer"] = {"_text": raw[:200].decode(errors="replace")}

        await asyncio.gather(*(one(x) for x in items))


def _expected_refusals(item: dict[str, Any]) -> int:
    """Dead letters an answer promises: one per refused record of an authenticated request."""
    ans = item["answer"] if isinstance(item.get("answer"), dict) else {}
    if item.get("too_large") and "X-Obot-Signature-256" in item.get("headers", {}):
        return 0  # documented: a signed filter cannot check the signature of a body it did not read
    if item["status"] == 200:
        return len(ans.get("rejected") or [])
    if item["status"] in (400, 413):
        if "rejected" in ans:
            return len(ans["rejected"])
        return 1 if ans.get("reason") not in (None, "bad_header") else 0
    return 0


def _refusal_reasons(item: dict[str, Any]) -> list[str | None]:
    ans = item["answer"] if isinstance(item.get("answer"), dict) else {}
    if "rejected" in ans:
        return [r.get("reason") for r in ans["rejected"]]
    return [ans.get("reason")] if 400 <= item["status"] < 500 else []


def test_hostile_corpus_on_every_route_crashes_nothing_loses_nothing(settings: Settings, ch_client,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.sinks.conftest import fast_sink, running_sink, wait_caught_up

    monkeypatch.setenv("GATELEDGER_KAFKA_SESSION_TIMEOUT_MS", "3000")
    monkeypatch.setenv("GATELEDGER_KAFKA_HEARTBEAT_INTERVAL_MS", "500")
    settings = Settings()
    db = settings.clickhouse.database
    rng = random.Random(SEED)
    plan = {route: corpus(route, rng, k * 1_000_000) for k, route in enumerate(ROUTES)}
    upstream = TolerantAxonFlow()

    async def main() -> None:
        async with TestServer(upstream.app(), host="127.0.0.1") as up:
            # As deployed: a relay token (records name their tenants) and a signed webhook filter.
            ingest = IngestSettings(axonflow_upstream_url=str(up.make_url("")), publish_timeout_s=8.0,
                                    tokens={TOKEN: {"tenant": "*"}}, webhook_secret=SECRET,
                                    axonflow_tokens={TAP_TOKEN: ["*"]})
            async with running_sink(settings, fast_sink(batch_max_rows=2000)) as state, \
                    ingest_client(settings, ingest) as http:
                base = str(http.make_url("")).rstrip("/")
                for route, items in plan.items():
                    await _send_all(base, items, ROUTES[route]["path"])
                    r = await http.get("/healthz")
                    assert r.status == 200, f"the server stopped answering after {route}"
                await wait_caught_up(settings, state["sink"], timeout_s=180)

    asyncio.run(main())

    problems: list[str] = []
    for route, items in plan.items():
        statuses = Counter(x["status"] for x in items)
        assert len(items) >= PER_ROUTE, route  # requests, not records
        fives = [x for x in items if x["status"] >= 500]
        if fives:
            problems.append(f"{route}: {len(fives)} answers >= 500, e.g. {fives[0]['status']} "
                            f"{fives[0]['answer']} for {fives[0]['body'][:120]!r}")
        undocumented = Counter(r for x in items for r in _refusal_reasons(x) if r not in DOCUMENTED_REASONS)
        if undocumented and not route.startswith("tap"):
            problems.append(f"{route}: refusals without a documented reason: {dict(undocumented)}")
        for x in items:
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
            if x["must_refuse"] and not x.get("unauthenticated") and x["status"] not in (400, 413):
                problems.append(f"{route}: refused input answered {x['status']} {x['answer']} for {x['body'][:300]!r}")
                break
            if x.get("too_large") and x["status"] != 413:
                problems.append(f"{route}: an 11 MB body answered {x['status']}")
                break
            if x.get("record_too_large") and "too_large" not in _refusal_reasons(x):
                problems.append(f"{route}: a record over the record limit answered {x['status']} {x['answer']}")
                break
        print(route, dict(statuses))
    assert not problems, "\n".join(problems)

    # -- ClickHouse, once ----------------------------------------------------------------------
    rows = ch_client.query(f"SELECT id, data, source, type FROM `{db}`.raw_events FINAL").result_rows
    found: Counter[str] = Counter()
    for _id, data, _src, _type in rows:
        for m in set(MARKER.findall(data)):
            found[m] += 1
    letters = ch_client.query(f"SELECT id, stage, origin, reason, original FROM `{db}`.dead_letters FINAL").result_rows
    ingest_letters = [r for r in letters if r[1] == "ingest"]
    other_letters = [r for r in letters if r[1] != "ingest"]
    assert all(r[3] for r in letters), "a dead letter without a reason"
    http_letters = [r for r in ingest_letters if r[2].startswith("http:")]
    assert {r[3] for r in http_letters} <= DOCUMENTED_REASONS, Counter(r[3] for r in http_letters)
    lettered: Counter[str] = Counter()
    for r in letters:
        for m in set(MARKER.findall(r[4])):
            lettered[m] += 1

    for route, items in plan.items():
        if route.startswith("tap"):
            continue
        valid = [m for x in items for m in x["valid"]]
        missing = [m for m in valid if found[m] == 0 and lettered[m] == 0]
        twice = [m for m in valid if found[m] > 1]
        assert not missing, f"{route}: {len(missing)} accepted valid records landed nowhere, e.g. {missing[:3]}"
        assert not twice, f"{route}: landed more than once: {twice[:3]}"
        in_sink_letters = [m for m in valid if found[m] == 0]
        assert not in_sink_letters, f"{route}: valid records dead-lettered by the sink: {in_sink_letters[:3]}"
        # Refused before authentication: answered, never dead-lettered (and never recorded).
        strangers = [x["marker"] for x in items if x.get("unauthenticated")]
        assert not [m for m in strangers if found[m] or lettered[m]], f"{route}: a stranger's request was kept"
    # Every refusal the server reported is one ingest dead letter (each refused input is unique).
    non_tap = [x for route, items in plan.items() if not route.startswith("tap") for x in items]
    refusals = sum(_expected_refusals(x) for x in non_tap)
    assert len(http_letters) == refusals, (len(http_letters), refusals, Counter(r[3] for r in http_letters))
    # The tap, per exchange: every request it answered is recorded exactly once, as an event or as a
    # dead letter, found by the marker it carried (a lost and a duplicated exchange cannot cancel out).
    tap_letters = [r for r in ingest_letters if r[2].startswith("tap:")]
    tap_found: Counter[str] = Counter()
    for _id, data, _src, typ in rows:
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
        answered = [x for x in items if x["status"] not in (401, 413) and not x.get("unauthenticated")]
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
