"""An interaction from the set of facts correlated under one root key: a pure, order-free function.

Everything in the emitted row except ``emitted_at`` is a function of the *set* of facts: facts are
sorted before anything is picked, and ``version`` is the sum of the facts' versions (each fact's
version counts the events folded into its row), which grows with every new or updated fact. So the
row with the highest version is the same whatever order the events came in, and after a crash and
replay too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateledger import findings
from gateledger.contracts.events import Finding, Interaction, InteractionStatus
from gateledger.findings import governs, is_check_input_block
from stream_processors.common.timeutil import from_us
from stream_processors.facts import Fact, interaction_id

_KIND_ORDER = {"policy": 0, "llm": 1, "mcp": 2, "webhook": 3}


def version_of(facts: Iterable[Fact]) -> int:
    """The interaction version: the sum of its facts' versions (strictly grows on any change)."""
    return sum(f["v"] for f in facts)


def _ordered(facts: Iterable[Fact]) -> list[Fact]:
    return sorted(facts, key=lambda f: (_KIND_ORDER.get(f["kind"], 9), f["t"], f["key"]))


def _first(facts: list[Fact], field: str) -> Any:
    for f in facts:
        v = f.get(field)
        if v:
            return v
    return None


def _executed(f: Fact) -> bool:
    return bool(f.get("exe") or f.get("ran"))


def is_complete(facts: Iterable[Fact]) -> bool:
    """All expected parts are in: every approved pre-check has its LLM audit, every MCP call both halves."""
    facts = list(facts)
    mcps = [f for f in facts if f["kind"] == "mcp"]
    if not all(f.get("complete", True) for f in mcps):
        return False
    prechecks = [f for f in facts if f["kind"] == "policy"]
    if prechecks:
        audited = {f.get("ctx") for f in facts if f["kind"] == "llm" and f.get("ctx")}
        return all(not p["ok"] or not p.get("ctx") or p["ctx"] in audited for p in prechecks)
    return any(f["kind"] in ("llm", "mcp") for f in facts)


@dataclass(frozen=True)
class Bypass:
    """Something that ran although a block forbade it."""

    block: Fact
    offending: tuple[Fact, ...]
    what: str


def find_bypasses(facts: Iterable[Fact]) -> list[Bypass]:
    """Policy bypasses in one interaction.

    - After a blocked pre-check: an LLM call of that pre-check's context, or any LLM call or tool
      call that ran later while the latest pre-check before it was blocked.
    - After a webhook rejection of a tool call: that same call ran anyway, or the same tool (on the
      same server) ran later in the interaction without the rejecting filter having passed it.
      (A retry the filter accepted, other tools, or LLM calls after a rejected tool call are
      normal agent behaviour, not a bypass.)
    """
    ordered = sorted(facts, key=lambda f: (f["t"], f["key"]))
    prechecks = [f for f in ordered if f["kind"] == "policy"]
    by_ctx = {p["ctx"]: p for p in prechecks if p.get("ctx")}
    out: dict[str, tuple[Fact, list[Fact], str]] = {}

    def add(block: Fact, offender: Fact, what: str) -> None:
        entry = out.setdefault(block["key"], (block, [], what))
        if offender["key"] not in {o["key"] for o in entry[1]}:
            entry[1].append(offender)

    for f in ordered:
        if f["kind"] == "llm":
            own = by_ctx.get(f.get("ctx")) if f.get("ctx") else None
            if own is not None:
                if not own["ok"]:
                    add(own, f, "LLM call audited under a context whose pre-check was blocked")
                continue
        elif not (f["kind"] == "mcp" and _executed(f)):
            continue
        latest = None
        for p in prechecks:
            if p["t"] <= f["t"]:
                latest = p
        if latest is not None and not latest["ok"]:
            add(latest, f, f"{'LLM call' if f['kind'] == 'llm' else 'tool call'} ran after a blocked pre-check")

    blocks = [f for f in ordered if (f["kind"] == "mcp" and f.get("wrej")) or
              (f["kind"] == "webhook" and f.get("dec") == "rejected" and f.get("phase") != "response")
              or is_check_input_block(f)]
    for b in blocks:
        if is_check_input_block(b):
            for m in ordered:
                if m["kind"] == "mcp" and m["t"] >= b["t"] and _executed(m) and governs(b, m):
                    add(b, m, f"tool {m.get('tool') or m.get('server')} ran after AxonFlow's check-input blocked it")
            continue
        for m in ordered:
            if m["kind"] != "mcp" or not m.get("tool") or m.get("tool") != b.get("tool"):
                continue
            if b.get("sid") and m.get("sid") and b["sid"] != m["sid"]:
                continue
            # A filter delivery may not know the session: then the JSON-RPC id must do.
            same_call = m["key"] == b["key"] or (b.get("rpc") and m.get("rpc") == b["rpc"]
                                                 and (not b.get("sess") or m.get("sess") == b["sess"]))
            if same_call and m.get("ran"):
                add(b, m, f"tool {m['tool']} ran although a webhook filter rejected the call")
            elif not same_call and m["t"] >= b["t"] and _executed(m) and not _passed_by(m, b):
                add(b, m, f"tool {m['tool']} ran after a webhook filter rejected it, without that filter "
                          "passing it, in the same interaction")
    return [Bypass(block, tuple(sorted(offs, key=lambda o: o["key"])), what) for block, offs, what in out.values()]


def _passed_by(call: Fact, block: Fact) -> bool:
    """True when a filter that rejected ``block`` ran on ``call`` and let it through."""
    passed = set(call.get("wf") or ())
    rejecting = set(block.get("wrf") or ())
    if not rejecting or rejecting == {""}:
        return bool(passed)  # unnamed filter: any filter having passed the call counts
    return bool(passed & rejecting)


def build(root: str, facts: Iterable[Fact], *, now: datetime, timeout_us: int) -> tuple[Interaction, list[Finding]]:
    """The interaction row and its policy-bypass findings."""
    facts = _ordered(facts)
    tenant = facts[0]["tenant"]
    # Tombstones ("gone": a row that moved to another interaction) keep the time span and version
    # moving, and count for nothing else.
    live = [f for f in facts if f["kind"] != "gone"]
    iid = interaction_id(root)
    prechecks = sorted((f for f in facts if f["kind"] == "policy"), key=lambda f: (f["t"], f["key"]))
    llms = [f for f in facts if f["kind"] == "llm"]
    mcps = [f for f in facts if f["kind"] == "mcp"]
    hooks = [f for f in facts if f["kind"] == "webhook"]
    start = min(f["t"] for f in facts)
    end = max(f["te"] for f in facts)
    complete = is_complete(live)
    bypasses = find_bypasses(facts)
    # Distinct rejected MCP requests: Obot's record of a filter run and the filter's own record of
    # the same decision count once.
    rejections = len({(f.get("tool"), f.get("rpc")) for f in mcps if f.get("wrej")}
                     | {(f.get("tool"), f.get("rpc")) for f in hooks if f.get("dec") == "rejected"})
    errors = sum(1 for f in llms + mcps if f.get("err"))
    blocked_pre = [p for p in prechecks if not p["ok"]]
    approved = prechecks[-1]["ok"] if prechecks else None
    if bypasses:
        status = InteractionStatus.BYPASS
    elif approved is False or (rejections and not any(_executed(m) for m in mcps)
                               and not any(f["t"] >= _first_rejection(mcps, hooks) for f in llms)):
        status = InteractionStatus.BLOCKED
    elif errors:
        status = InteractionStatus.ERROR
    elif not complete:
        status = InteractionStatus.INCOMPLETE
    else:
        status = InteractionStatus.OK
    late = any(f["rcv"] - f["t"] > timeout_us for f in live)
    request_id = root.split("|", 1)[1][2:] if root.split("|", 1)[1].startswith("r:") else _first(facts, "req")
    row = Interaction(
        id=iid,
        version=version_of(facts),
        tenant=tenant,
        time=from_us(start),
        end_time=from_us(end),
        request_id=request_id,
        context_ids=sorted({f["ctx"] for f in facts if f.get("ctx")}),
        trace_id=_first(facts, "trace"),
        session_id=_first(facts, "sess"),
        user_id=_first(facts, "user"),
        client_id=_first(facts, "client"),
        status=status,
        approved=approved,
        block_reason=blocked_pre[0].get("br") if blocked_pre else None,
        policies=sorted({p for f in prechecks for p in (f.get("pol") or [])}),
        llm_calls=len(llms),
        tool_calls=sum(1 for f in mcps if f.get("method") == "tools/call"),
        webhook_rejections=rejections,
        errors=errors,
        input_tokens=sum(f.get("tin") or 0 for f in llms),
        output_tokens=sum(f.get("tout") or 0 for f in llms),
        total_tokens=sum(f.get("ttot") or 0 for f in llms),
        cost_usd=None,  # filled by the cost stage
        latency_ms=max(0, (end - start) // 1000),
        models=sorted({f["model"] for f in llms if f.get("model")}),
        mcp_servers=sorted({f["server"] for f in mcps if f.get("server")}),
        tools=sorted({f["tool"] for f in mcps if f.get("tool") and f.get("method") == "tools/call"}),
        complete=complete,
        close_reason="late_update" if late else ("complete" if complete else "timeout"),
        event_ids=sorted({i for f in live for i in f["ids"]}),
        emitted_at=now,
        retracted=not live,
    )
    found = [
        findings.policy_bypass(
            tenant=tenant, interaction_id=iid, interaction_version=row.version, block_key=b.block["key"],
            block_event_ids=b.block["ids"],
            offending_event_ids=[i for o in b.offending for i in o["ids"]], time=from_us(b.block["t"]), what=b.what,
            request_id=request_id, user_id=row.user_id, client_id=row.client_id,
            context_id=b.block.get("ctx"), now=now,
        )
        for b in bypasses
    ]
    return row, found


def _first_rejection(mcps: list[Fact], hooks: list[Fact]) -> int:
    times = [f["t"] for f in mcps if f.get("wrej")] + [f["t"] for f in hooks if f.get("dec") == "rejected"]
    return min(times) if times else 0
