"""The hostile-input corpus of tests/producers/test_hostile_inputs.py: per route, a seeded generator of
valid records carrying hostile content, inputs that must be refused, random mutations, bad credentials,
wrong content types, forged tenants and odd identity headers, a flood and slow bodies; and the upstreams
the routes talk to (an AxonFlow that answers anything by AxonFlow's rules, a webhook receiver behind the
notifier's relay)."""

from __future__ import annotations

import hashlib
import hmac
import random
import re
import string
import uuid
from collections import Counter
from typing import Any

import orjson
from aiohttp import web

from tests import samples
from tests.producers.fake_axonflow import check_input_refused, check_output_refused, decide_refused
from tests.rawhttp import malformed_requests

SEED = 20261121
PER_ROUTE = 1000  # HTTP requests per route
TOKEN = "tok-hostile-relay"
TOKEN_ACME = "tok-hostile-acme"  # a relay token locked to tenant acme
TAP_TOKEN = "tok-hostile-tap"  # any tenant, as the relay token
TAP_TOKEN_ACME = "tok-hostile-tap-acme"  # the tap for tenant acme only
SECRET = "whsec-hostile"
SCOPED, SCOPED_SECRET, SCOPED_TENANT = "scoped", "whsec-hostile-scoped", "globex"
DEFAULT_TENANT = "default"  # the ingest's default tenant: the default filter's
AM_TOKEN = "tok-hostile-alertmanager"
# Limits as deployed but smaller, so the over-limit cases cost little: the checks are the same code.
RECORD_LIMIT = 200_000
BODY_LIMIT = 10 * 1024 * 1024
AM_BODY_LIMIT = 1024 * 1024
MARKER = re.compile(r"fzm[a-z]+")
# Flood and slow body, per route: FLOOD_SLOTS requests whose bodies never finish hold every slot of their
# caller (the concurrency limit) until the body-read timeout (408), and requests meanwhile are 429. The
# corpus's own traffic (16 at a time per route) stays under the limit.
FLOOD_SLOTS = 20
SLOW_BODY_S = 4.0

# Masking cost grows with the characters of text: the longest string and the deepest nesting are sent once per
# route (_special_cases), shorter ones in the random pool.
LONG = "A" * 20_000
DEEPEST = 50_000
HOSTILE_STRINGS = [
    "'; DROP TABLE raw_events; --", "\" OR 1=1 --", "1); SELECT * FROM system.users; --",
    "{tenant:String}", "$db.raw_events", "\r\nX-Injected: 1\r\n\r\n<html>", "%0d%0aSet-Cookie: a=b",
    "\u0000\u0001\u0007", "\u202e\u0645\u0631\u062d\u0628\u0627", "🦄" * 50, "A" * 2_000, "\\", "\\u0000",
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


def decide_request(m: str, rng: random.Random) -> dict[str, Any]:
    return {"stage": "tool", "query": f"run {m}", "context": {}}


def check_input_request(m: str, rng: random.Random) -> dict[str, Any]:
    return {"connector_type": "github", "tool": "search_code", "statement": f"SELECT {m}", "parameters": {}}


def check_output_request(m: str, rng: random.Random) -> dict[str, Any]:
    return {"connector_type": "github", "tool": "search_code", "message": f"found {m}", "parameters": {}}


def am_notification(m: str, rng: random.Random) -> dict[str, Any]:
    """Alertmanager's webhook payload, version 4 (its unknown top-level fields are kept: free content)."""
    labels = {"alertname": m, "severity": "critical"}
    return {"version": "4", "groupKey": f'{{}}:{{alertname="{m}"}}', "truncatedAlerts": 0, "status": "firing",
            "receiver": "gateledger", "groupLabels": {"alertname": m}, "commonLabels": labels,
            "commonAnnotations": {"summary": f"alert {m}"}, "externalURL": "http://127.0.0.1:9093",
            "alerts": [{"status": "firing", "labels": labels, "annotations": {"summary": f"alert {m}"},
                        "startsAt": "2026-11-21T21:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "http://127.0.0.1:9090/graph", "fingerprint": m}]}


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
        return b[: rng.randrange(1, len(b) - 1)] + b" " + m.encode()  # a space: a cut marker cannot glue to it
    if kind == 2:  # nesting deeper than any JSON parser accepts
        d = rng.randrange(2000, 8000)
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
    # A named filter with its own secret and tenant, scoped by its URL's path (producers/obot/webhook.py).
    "webhook-scoped": {"path": f"/v1/obot/webhook/{SCOPED}/server/srv-fz/user/usr-fz", "make": webhook,
                       "free": "params", "array": False, "required": ["method", "jsonrpc"],
                       "ctype": "application/json"},
    "tap-decide": {"path": "/axonflow/api/v1/decide", "make": decide_request, "free": "context", "array": False,
                   "required": ["stage", "query"], "ctype": "application/json"},
    "tap-mcp-check-input": {"path": "/axonflow/api/v1/mcp/check-input", "make": check_input_request,
                            "free": "parameters", "array": False, "required": ["connector_type", "statement"],
                            "ctype": "application/json"},
    "tap-mcp-check-output": {"path": "/axonflow/api/v1/mcp/check-output", "make": check_output_request,
                             "free": "parameters", "array": False, "required": ["connector_type", "message"],
                             "ctype": "application/json"},
    # The notifier's relay (sinks/notifier/alertmanager.py), served by the notifier, not the ingest.
    "alertmanager": {"path": "/alertmanager", "make": am_notification, "free": "fz_free", "array": False,
                     "required": ["groupKey", "status", "alerts"], "ctype": "application/json"},
}
# Each route's requests come from an address of their own (127.0.0.0/8 is all loopback), its flood from
# another: dead letters name their caller, so every refusal is accounted for per route.
ADDRESS = {route: f"127.0.1.{10 + k}" for k, route in enumerate(ROUTES)}
FLOOD_ADDRESS = {route: f"127.0.2.{10 + k}" for k, route in enumerate(ROUTES)}
# A relay token per route's flood: limits are per known token, so one route's flood leaves the others alone.
FLOOD_TOKENS = {route: f"tok-hostile-flood-{k}" for k, route in enumerate(ROUTES)}
# And one per ingest route whose grant has a rate limit of its own, far below the service's: RATE_REQUESTS
# sent at once from the flood's address get RATE_BURST through and the rest 429 rate_limited (one more
# token only each 1 / RATE_PER_S seconds). The notifier's /alertmanager has one caller (its token) and no
# grants: its 429s come from its flood only.
RATE_PER_S, RATE_BURST, RATE_REQUESTS = 0.1, 2, 10
RATE_TOKENS = {route: f"tok-hostile-rate-{k}" for k, route in enumerate(ROUTES) if route != "alertmanager"}
# Filter URLs the webhook filter must refuse (404 not_found, before the signature is checked).
NOT_FOUND_PATHS = (f"/v1/obot/webhook/{SCOPED}/server", "/v1/obot/webhook/nosuch/server/x",
                   f"/v1/obot/webhook/{SCOPED}/team/x", f"/v1/obot/webhook/{SCOPED}/user/a/user/b",
                   f"/v1/obot/webhook/{SCOPED}/server/a/b/c")


def credentials(route: str, body: bytes) -> dict[str, str]:
    """What an honest caller of the route sends: the bearer token, or the filter's signature."""
    path = ROUTES[route]["path"]
    if path.startswith("/v1/obot/webhook"):
        secret = SCOPED_SECRET if path.startswith(f"/v1/obot/webhook/{SCOPED}/") else SECRET
        return {"X-Obot-Signature-256": "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()}
    if path.startswith("/axonflow/"):
        # The tap authenticates its callers by its own tokens (X-Gateledger-Token), not the ingest's.
        return {"Authorization": f"Bearer {TOKEN}", "X-Gateledger-Token": TAP_TOKEN}
    if path == "/alertmanager":
        return {"Authorization": f"Bearer {AM_TOKEN}"}
    return {"Authorization": f"Bearer {TOKEN}"}


def flood_credentials(route: str, body: bytes) -> dict[str, str]:
    """The route's honest credentials, with the flood's own token where the route takes one."""
    creds = credentials(route, body)
    if route == "alertmanager":
        return creds
    token = FLOOD_TOKENS[route]
    for name in ("Authorization", "X-Gateledger-Token"):
        if name in creds:
            creds[name] = f"Bearer {token}" if name == "Authorization" else token
    return creds


def rate_credentials(route: str, body: bytes) -> dict[str, str]:
    """The route's honest credentials with its rate-limited token (limits are per known bearer token on
    every route: on the webhook filter, a gateway in front of Obot's may add one beside the signature)."""
    creds, token = credentials(route, body), RATE_TOKENS[route]
    if "X-Gateledger-Token" in creds:
        creds["X-Gateledger-Token"] = token
    return creds | {"Authorization": f"Bearer {token}"}


def valid_item(route: str, m: str, rng: random.Random, **extra: Any) -> dict[str, Any]:
    """One valid request of the route, sent with the flood's credentials (the rate token's with rate=True)."""
    spec = ROUTES[route]
    rec = hostile_but_valid(spec["make"](m, rng), m, rng, spec["free"])
    body = orjson.dumps([rec] if spec["array"] else rec)
    creds = rate_credentials(route, body) if extra.get("rate") else flood_credentials(route, body)
    return {"body": body, "headers": {"Content-Type": spec["ctype"], **creds},
            "valid": [m], "must_refuse": False, "records": 1, "marker": m, **extra}


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
    _special_cases(route, rng, next_marker, add, out)
    if route != "alertmanager":  # a notification is not a record: only the body limit applies
        # a record over the record limit inside a body under the body limit
        m = next_marker()
        big = hostile_but_valid(spec["make"](m, rng), m, rng, spec["free"])
        big[spec["free"]] = {"pad": m + " " + "x" * int(RECORD_LIMIT * 1.2)}  # a space ends the marker
        add(orjson.dumps([big] if spec["array"] else big), [], True, 1, m, record_too_large=True)
    # a body over the body limit
    m = next_marker()
    over = (AM_BODY_LIMIT if route == "alertmanager" else BODY_LIMIT) + 10
    add(b'{"pad": "' + m.encode() + b" " + b"x" * over + b'"}', [], True, 1, m, too_large=True)
    # requests aiohttp refuses before any handler (a malformed request line or header): 400 / 417, counted
    # as bad_request all the same
    out += [{"body": b"", "raw": data, "valid": [], "must_refuse": True, "records": 0, "marker": "",
             "malformed": True} for data in malformed_requests(spec["path"])]
    return out


WRONG_CTYPES = ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=fz", "")


def _special_cases(route: str, rng: random.Random, next_marker: Any, add: Any, out: list[dict[str, Any]]) -> None:
    """Per route: wrong content types, forged tenants, an odd identity header, filter URLs that name nothing."""
    spec = ROUTES[route]
    path = spec["path"]

    def valid_body(m: str) -> bytes:
        rec = hostile_but_valid(spec["make"](m, rng), m, rng, spec["free"])
        return orjson.dumps([rec] if spec["array"] else rec)

    m = next_marker()  # the longest string, valid where the format has free content
    rec = spec["make"](m, rng)
    rec[spec["free"]] = {"text": LONG + " " + m, "k": LONG}
    add(orjson.dumps([rec] if spec["array"] else rec), [m], False, 1, m)
    m = next_marker()  # the deepest nesting: must be refused
    add(b"[" * DEEPEST + m.encode() + b"]" * DEEPEST, [], True, 1, m)
    for ctype in WRONG_CTYPES:  # the server decides; the accounting must still hold
        m = next_marker()
        add(valid_body(m), [], False, 1, m, headers={"Content-Type": ctype})
    if route == "alertmanager":
        return
    for forged in ("globex", "initech"):
        m = next_marker()
        body = valid_body(m)
        if path.startswith("/axonflow/"):
            # A token for acme naming another tenant: 403, dead-lettered, never forwarded.
            add(body, [], True, 1, m, forged="refused",
                headers={"X-Gateledger-Token": TAP_TOKEN_ACME, "X-Tenant-ID": forged})
        elif path.startswith("/v1/obot/webhook"):
            # A signed filter's tenant is its configuration's; tenant headers are ignored.
            tenant = SCOPED_TENANT if path.startswith(f"/v1/obot/webhook/{SCOPED}/") else DEFAULT_TENANT
            add(body, [], False, 1, m, forged=tenant, headers={"X-Gateledger-Tenant": forged, "X-Tenant-ID": forged})
        else:
            # A token locked to acme: whatever it sends lands as acme or is refused.
            add(body, [], False, 1, m, forged="acme",
                headers={"Authorization": f"Bearer {TOKEN_ACME}", "X-Gateledger-Tenant": forged, "X-Tenant-ID": forged})
    m = next_marker()
    body = valid_body(m)
    odd = [(b"Content-Type", spec["ctype"].encode()), *((k.encode(), v.encode()) for k, v in credentials(route, body).items()),
           (b"X-Tenant-ID" if path.startswith("/axonflow/") else b"X-Gateledger-Tenant", "acm\u00e9".encode())]
    out.append({"body": body, "raw_headers": odd, "valid": [], "must_refuse": True, "records": 1, "marker": m,
                "odd_identity": True})
    if route == "webhook-scoped":
        for bad in NOT_FOUND_PATHS:
            m = next_marker()
            add(valid_body(m), [], True, 1, m, path=bad, not_found=True)
        m = next_marker()  # a scope naming a non-ASCII server id: a valid filter URL
        add(valid_body(m), [], False, 1, m, path=f"/v1/obot/webhook/{SCOPED}/server/%E2%98%83/user/u")


class TolerantAxonFlow:
    """An upstream that answers anything: JSON objects get AxonFlow-shaped answers by AxonFlow's rules
    (the MCP checks and decide: fake_axonflow.py's, each naming its upstream file), the rest 400."""

    def __init__(self) -> None:
        self.n = 0

    @staticmethod
    async def _object(request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except Exception:  # noqa: BLE001 - hostile bytes: answer as a web server would
            return None
        return body if isinstance(body, dict) else None

    async def precheck(self, request: web.Request) -> web.Response:
        self.n += 1
        if await self._object(request) is None:
            return web.json_response({"error": "bad request"}, status=400)
        return web.json_response({"context_id": f"ctx-fz-{self.n}", "approved": True, "policies": [],
                                  "expires_at": "2030-01-01T00:00:00Z"})

    async def audit(self, request: web.Request) -> web.Response:
        if await self._object(request) is None:
            return web.json_response({"error": "bad request"}, status=400)
        return web.json_response({"success": True, "audit_id": "aud-x"})

    async def decide(self, request: web.Request) -> web.Response:
        body = await self._object(request)
        if (bad := decide_refused(body)) is not None:
            return bad
        return web.json_response({"verdict": "allow", "decision_id": str(uuid.uuid4()), "trace_id": uuid.uuid4().hex,
                                  "reasons": [], "evaluated_policies": ["sys_dangerous_cmd"], "stage": body["stage"]})

    async def check_input(self, request: web.Request) -> web.Response:
        if (bad := check_input_refused(await self._object(request))) is not None:
            return bad
        return web.json_response({"allowed": True, "policies_evaluated": 12, "decision_id": str(uuid.uuid4())})

    async def check_output(self, request: web.Request) -> web.Response:
        if (bad := check_output_refused(await self._object(request))) is not None:
            return bad
        return web.json_response({"allowed": True, "policies_evaluated": 9, "decision_id": str(uuid.uuid4())})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/policy/pre-check", self.precheck)
        app.router.add_post("/api/audit/llm-call", self.audit)
        app.router.add_post("/api/v1/decide", self.decide)
        app.router.add_post("/api/v1/mcp/check-input", self.check_input)
        app.router.add_post("/api/v1/mcp/check-output", self.check_output)
        return app


class AlertReceiver:
    """The webhook behind the notifier's relay: takes everything, counts the markers it was sent."""

    def __init__(self) -> None:
        self.markers: Counter[str] = Counter()

    async def hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        for m in set(MARKER.findall(body.decode("utf-8", "replace"))):
            self.markers[m] += 1
        return web.json_response({"ok": True})

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/hook", self.hook)
        return app
