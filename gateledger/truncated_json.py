"""JSON cut short (a truncated body, a dead letter's original), closed so it parses.

Masking applies its key rules to parsed JSON; text that stopped mid-record would otherwise fall back to
reading pairs out of running text, where one escaped quote split by the cut misaligns every quote after
it. Closing it is cheap: one pass over the text, then what the cut left open is closed in order.
"""

from __future__ import annotations

import re

# What may end a value cut short: a number or a literal that is still whole when the cut falls after it.
_CUT_UNICODE_ESCAPE = re.compile(r"(\\+)u[0-9a-fA-F]{0,3}\Z")
_SCALAR_TAIL = re.compile(r"(?:-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null)\Z")


def close(text: str) -> tuple[str, str] | None:
    """``(closed, added)``: ``text`` with what it left open closed (``closed == kept + added``, ``kept``
    being ``text`` less a dangling escape, comma or partial literal); None when ``text`` is not JSON
    cut short (it does not start with ``{``/``[``, or it is complete)."""
    s = text.rstrip()
    if s[:1] not in ("{", "["):
        return None
    stack: list[str] = []  # "}" or "]" per open container
    in_string = escaped = False
    expecting_key = False  # in an object, before a member's name
    key_open = False  # the open string is a member's name
    awaiting_colon = False  # a member's name ended, its ":" not yet seen
    for i, c in enumerate(s):
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string, awaiting_colon = False, key_open
            continue
        if c == '"':
            in_string, key_open = True, expecting_key
            expecting_key = False
        elif c in "{[":
            stack.append("}" if c == "{" else "]")
            expecting_key = c == "{"
        elif c in "}]":
            if not stack or stack.pop() != c:
                return None  # not JSON: brackets that do not nest
            expecting_key = False
            if not stack and s[i + 1:].strip():
                return None  # a complete value followed by more text: not one value cut short
        elif c == ",":
            expecting_key = bool(stack) and stack[-1] == "}"
        elif c == ":":
            awaiting_colon = False
    if not stack and not in_string:
        return None
    kept = s[:-1] if escaped else s  # a backslash whose escaped character was cut off
    if in_string and (m := _CUT_UNICODE_ESCAPE.search(kept)) and len(m.group(1)) % 2:
        kept = kept[: m.start()] + m.group(1)[:-1]  # "\u00" whose hex digits were cut off
    added = ""
    if in_string:
        added = '"' + (":null" if key_open else "")
    else:  # ``s`` ends in no space (stripped) and, outside a string, no dangling escape was cut
        last = kept[-1:]
        if last == ",":
            kept = kept[:-1]
        elif last == ":":
            added = "null"
        elif awaiting_colon:
            added = ":null"
        elif last not in ("{", "[", '"', "}", "]") and not _SCALAR_TAIL.search(kept):
            return None  # cut inside a literal ("tru"): not worth guessing
    return kept + added + "".join(reversed(stack)), added + "".join(reversed(stack))


def reopen(closed: str, added: str) -> str:
    """``closed`` (re-serialized, perhaps with values replaced) without what :func:`close` added: the
    containers' closing brackets (a replaced container may have taken some of them with it), then what
    closed the value that was cut."""
    value_part = added.rstrip("}]")
    brackets = len(added) - len(value_part)
    end = len(closed)
    while brackets and end and closed[end - 1] in "}]":
        end, brackets = end - 1, brackets - 1
    out = closed[:end]
    return out[: -len(value_part)] if value_part and out.endswith(value_part) else out
