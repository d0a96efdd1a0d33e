"""The Obot MCP half-merge of the normalize stage (one partition).

Obot's flat MCP audit records come as a request half and a response half of one JSON-RPC exchange
(``mcp.half_of``); they are merged into one ``McpCall`` here. State: one entry ``m|<exchange>`` (the
exchange key starts with the tenant; one string, ``records.py``) holding each half's envelope text
until its other half arrives; a half left alone past ``mcp_merge_timeout_s`` on its own source's
progress is emitted incomplete, and completed (same call id and time) if the other half turns up
within the retention.
A mixin of ``NormalizePartition``, which provides the state, the timers and the emit helper.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import McpCall
from gateledger.topics import EventType
from stream_processors.common.timeutil import from_us, to_us
from stream_processors.normalize import mcp
from stream_processors.normalize.dispatch import handles
from stream_processors.normalize.records import decode_exchange, encode_exchange, id_digest


class ExchangeMerge:
    """The two halves of each Obot MCP exchange merged into one call, or emitted alone on a timeout."""

    state: Any
    _raw: bytes
    _merge_timeout: int
    _retention: int
    _parsed: dict[tuple[str, str], tuple[Envelope, Any]]
    _schedule: Callable[[str, dict[str, Any], int | None], None]
    _emit_mcp: Callable[[McpCall, int], None]

    @handles(EventType.OBOT_MCP_CALL)
    def _obot_mcp_call(self, env: Envelope, t_us: int, rcv: int) -> None:
        rec = mcp.parse_flat(env)
        half = mcp.half_of(rec)
        if half == "whole":
            self._emit_mcp(mcp.call_from_flat(call_id=env.id, request=(env, rec), response=None, complete=True), rcv)
        else:
            self._add_half(env, rec, half, t_us, rcv)

    def _add_half(self, env: Envelope, rec: Any, half: str, t_us: int, rcv: int) -> None:
        xkey = mcp.exchange_key(env, rec)
        key = f"m|{xkey}"
        value = self.state.get(key)
        st = None if value is None else decode_exchange(key, value)
        env_json = self._raw.decode("utf-8", "replace")
        eid = id_digest(env.id)
        if st is not None:
            if eid in st["ids"]:
                return  # already folded in (a replay after a crash between state and dedup writes)
            open_ = st["open"]
            if st.get(half) is None:
                # The other half of the current exchange (possibly late, after a timeout closed it).
                st[half] = env_json
                self._parsed[(key, half)] = (env, rec)
                st["ids"].append(eid)
                st["last"] = max(st["last"], t_us)
                st["rcv"] = max(st.get("rcv", 0), rcv)
                self._merged(key, st, xkey)
                return
            if open_:
                # A second record of the same half: the JSON-RPC id was reused (no session id).
                # Close what we have and start the next exchange with this one.
                self._merge_timeout_close(key, st, xkey)
            old, st = st.get("due"), {"g": st["g"] + 1}
        else:
            old, st = None, {"g": 0}
        st.update({"request": None, "response": None, "ids": [eid], "open": True, "last": t_us, "rcv": rcv,
                   "tn": env.tenant, "src": f"{env.source}|{env.type}"})
        st[half] = env_json
        self._parsed[(key, half)] = (env, rec)
        st["due"] = t_us + self._merge_timeout
        self.state.put(key, encode_exchange(key, st))
        self._schedule(key, st, old)

    def _pair(self, key: str, st: dict[str, Any]) -> tuple[Any, Any]:
        """The parsed halves of an exchange (from the cache, or re-parsed after a restart)."""
        out = []
        for half in ("request", "response"):
            text = st.get(half)
            parsed = self._parsed.pop((key, half), None)
            if parsed is None and isinstance(text, str):
                e = Envelope.model_validate_json(text)
                parsed = (e, mcp.parse_flat(e))
            out.append(parsed)
        return out[0], out[1]

    def _merged(self, key: str, st: dict[str, Any], xkey: str) -> None:
        req, resp = self._pair(key, st)
        call = mcp.call_from_flat(call_id=mcp.merged_call_id(xkey, st["g"]), request=req, response=resp, complete=True)
        if st.get("t") is not None:
            # A lone half was emitted at its own time: the merged version keeps that time, or it
            # would be a second row under another (tenant, time, id) sorting key.
            call = call.model_copy(update={"time": from_us(st["t"])})
        self._emit_mcp(call, st["rcv"])
        # Bodies are no longer needed once both halves are in.
        old = st.get("due")
        st.update(request=True, response=True, open=False, due=st["last"] + self._retention)
        self.state.put(key, encode_exchange(key, st))
        self._schedule(key, st, old)

    def _merge_timeout_close(self, key: str, st: dict[str, Any], xkey: str) -> None:
        req, resp = self._pair(key, st)
        call = mcp.call_from_flat(call_id=mcp.merged_call_id(xkey, st["g"]), request=req, response=resp,
                                  complete=False)
        self._emit_mcp(call, st["rcv"])
        st["t"] = to_us(call.time)  # the time every later version of this call keeps
        # Keep the half parsed: a late other half may still complete this exchange.
        for half, parsed in (("request", req), ("response", resp)):
            if parsed is not None:
                self._parsed[(key, half)] = parsed
        # The half stays, so a late other half can still complete this exchange.
        old = st.get("due")
        st.update(open=False, due=st["last"] + self._retention)
        self.state.put(key, encode_exchange(key, st))
        self._schedule(key, st, old)

    def _merge_due(self, key: str, due: int, wm: int) -> None:
        value = self.state.get(key)
        st = None if value is None else decode_exchange(key, value)
        if st is None or st.get("due") != due:
            return  # rescheduled or gone
        if st["open"]:
            xkey = key[2:]
            self._merge_timeout_close(key, st, xkey)
        else:
            self.state.delete(key)
            self._parsed.pop((key, "request"), None)
            self._parsed.pop((key, "response"), None)
