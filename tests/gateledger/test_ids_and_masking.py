"""Deterministic ids, and masking that removes secrets and PII but keeps what analysts need."""

from __future__ import annotations

from gateledger.ids import LEGACY_TENANT, event_id, stable_id, tenant_id
from gateledger.masking import REDACTED, Masker, MaskingSettings


def test_stable_ids() -> None:
    assert stable_id("a", 1, None) == stable_id("a", 1, None)
    assert stable_id("ab", "c") != stable_id("a", "bc")
    assert stable_id({"b": 1, "a": 2}) == stable_id({"a": 2, "b": 1})
    assert event_id("s", "t", 5, tenant="a") == event_id("s", "t", 5, record={"different": True}, tenant="a")
    assert event_id("s", "t", None, {"x": 1}, tenant="a") == event_id("s", "t", None, {"x": 1}, tenant="a")
    assert event_id("s", "t", None, {"x": 1}, tenant="a") != event_id("s", "t", None, {"x": 2}, tenant="a")


def test_event_ids_are_per_tenant_and_the_default_tenant_keeps_its_old_ids() -> None:
    # Two tenants' Obot installs both numbering rows 1, 2, 3...: the same upstream id, different events.
    ids = {event_id("obot/default/mcp", "obot.mcp.call", n, tenant=t) for t in ("default", "acme", "globex")
           for n in (1, 2, 3)}
    assert len(ids) == 9
    assert tenant_id("acme", "x") != tenant_id("globex", "x") != tenant_id("default", "x")
    # Length-prefixed parts: a tenant named like a separator cannot forge another tenant's id.
    assert tenant_id("a", "b|c") != tenant_id("a|b", "c")
    # The ids minted before tenants were in them (up to 6a10a2c), pinned: single-tenant installs upgrade
    # without any record changing its id.
    assert event_id("obot/default/mcp", "obot.mcp.call", 1042, tenant=LEGACY_TENANT) == stable_id(
        "upstream", "obot/default/mcp", "obot.mcp.call", "1042")
    assert event_id("obot/default/mcp", "obot.mcp.call", 1042, tenant=LEGACY_TENANT) == \
        "8f6738b5e9638b913d3863810e63c5bd"


def masker(**kw: object) -> Masker:
    return Masker(MaskingSettings(**kw), salt=b"salt")


def test_secret_keys_redacted_token_counts_kept() -> None:
    out = masker().mask({
        "Authorization": "Basic dXNlcjpwYXNz",
        "headers": {"Cookie": "a=b", "X-Client-Secret": "s3", "x-api-key": "k"},
        "client_secret": "cs",
        "refresh_token": "rt",
        "inputTokens": 5,
        "token_usage": {"prompt_tokens": 3, "total_tokens": 4},
        "maxTokens": 100,
    })
    assert out["Authorization"] == REDACTED
    assert out["headers"] == {"Cookie": REDACTED, "X-Client-Secret": REDACTED, "x-api-key": REDACTED}
    assert out["client_secret"] == REDACTED and out["refresh_token"] == REDACTED
    assert out["inputTokens"] == 5 and out["token_usage"] == {"prompt_tokens": 3, "total_tokens": 4}
    assert out["maxTokens"] == 100


def test_user_token_becomes_joinable_hash() -> None:
    m = masker()
    a = m.mask({"user_token": "tok-1"})["user_token"]
    assert a.startswith("hmac:") and "tok-1" not in a
    assert a == m.mask({"user_token": "tok-1"})["user_token"]
    assert a != Masker(salt=b"other").mask({"user_token": "tok-1"})["user_token"]


def test_secrets_in_free_text() -> None:
    text = (
        "Authorization: Bearer abcdefghijklmnop1234 jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig "
        "key sk-proj-abcdefghijklmnopqrstuv ant sk-ant-api03-abcdefghijklmnopqrstu "
        "aws AKIAABCDEFGHIJKLMNOP gh ghp_abcdefghijklmnopqrstuvwxyz0123 "
        "url https://bob:hunter2@db.internal/x api_key=supersecret123 password: 'p4ssw0rd!'"
    )
    out = masker().mask_text(text)
    for secret in ("abcdefghijklmnop1234", "eyJzdWIiOiIxIn0", "sk-proj-abc", "sk-ant-api03", "AKIAABCDEFGHIJKLMNOP",
                   "ghp_abc", "hunter2", "supersecret123", "p4ssw0rd"):
        assert secret not in out, secret
    assert "api_key=" in out and "https://" in out


def test_pii_rules() -> None:
    text = "mail john.doe@example.com, call +1 555 123 4567, card 4111 1111 1111 1111"
    out = masker().mask_text(text)
    assert "john.doe@example.com" not in out and out.count("email:") == 1
    assert "555 123 4567" not in out and "4111" not in out
    # pseudonyms are stable, so one person's activity still joins up
    assert masker().mask_text("JOHN.DOE@example.com").split(":")[1][:12] == out.split("email:")[1][:12]
    redacting = masker(emails="redact").mask_text("x john.doe@example.com")
    assert redacting == "x [EMAIL]"
    keeping = masker(emails="keep", phones="keep", cards="keep").mask_text(text)
    assert keeping == text


def test_no_false_positives_on_ordinary_values() -> None:
    text = ("ip 192.168.100.200 date 2026-01-01T10:00:00.123456Z uuid 123e4567-e89b-12d3-a456-426614174000 "
            "order 1234567890123 took 12:30 total_tokens=1500")
    assert masker().mask_text(text) == text


def test_extra_rules() -> None:
    m = masker(extra_secret_keys=["X-Internal"], extra_patterns=[r"INT-\d{6}"])
    assert m.mask({"x_internal": "v", "note": "ref INT-123456"}) == {"x_internal": REDACTED, "note": f"ref {REDACTED}"}
