"""Each masking hole of issue 15, closed: one example per hole (the property test generalises them)."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from gateledger.deadletter import make_dead_letter
from gateledger.masking import REDACTED, Masker
from producers.accept import get_format
from producers.accept import IngestContext
from tests import samples

SECRET = "Zq8vR2mXw7LpT4nK9sYb"  # opaque: only its context says it is a secret
EMAIL = "alice.smith@example.com"
M = Masker(salt=b"salt")


def leaks(value: object, *needles: str) -> list[str]:
    text = json.dumps(value)
    return [n for n in needles if n in text]


def test_header_lists_as_name_value_pairs() -> None:
    out = M.mask({"headers": [{"name": "Authorization", "value": f"Bearer {SECRET}"},
                              {"name": "Accept", "value": "application/json"},
                              {"key": "X-Api-Key", "value": SECRET},
                              ["Cookie", f"sid={SECRET}"], ["Accept-Language", "en"]]})
    assert not leaks(out, SECRET)
    assert out["headers"][1] == {"name": "Accept", "value": "application/json"}
    assert out["headers"][4] == ["Accept-Language", "en"]


def test_more_secret_key_names() -> None:
    record = {"secret_key": SECRET, "accessKey": SECRET, "passphrase": SECRET, "session": SECRET,
              "refresh_tokens": [SECRET], "api_tokens": SECRET, "Ocp-Apim-Subscription-Key": SECRET,
              "AccountKey": SECRET, "sessionID": "sess-1", "total_tokens": 5, "prompt_tokens": "12",
              "usage": {"cached_tokens": 3}}
    out = M.mask(record)
    assert not leaks(out, SECRET)
    # Correlation keys and token counts are kept.
    assert out["sessionID"] == "sess-1" and out["total_tokens"] == 5 and out["prompt_tokens"] == "12"
    assert out["usage"] == {"cached_tokens": 3}


def test_urls_with_credentials_in_the_query() -> None:
    for url in (f"https://maps.googleapis.com/x?key={SECRET}&q=1",
                f"https://acct.blob.core.windows.net/c/b?sv=2022&sig={SECRET}",
                f"https://b.s3.amazonaws.com/o?X-Amz-Credential=AK%2F2026&X-Amz-Signature={SECRET}"):
        out = M.mask_text(url)
        assert SECRET not in out and out.startswith("https://") and REDACTED in out


def test_encoded_text() -> None:
    inner = {"password": SECRET, "email": EMAIL}
    double = json.dumps(json.dumps(inner))  # a JSON string holding JSON
    for text in (quote(f"password={SECRET}&user={EMAIL}"), quote(quote(f"token={SECRET}")), json.loads(double),
                 double, "payload " + base64.b64encode(json.dumps(inner).encode()).decode(),
                 base64.urlsafe_b64encode(f"Authorization: Bearer {SECRET}".encode()).decode()):
        out = M.mask_text(text)
        assert not leaks(out, SECRET, EMAIL, quote(EMAIL)), (text, out)


def test_base64_with_a_suffix_glued_on() -> None:
    # Found by the end-to-end property (seed 3762841318): an id made of a base64 token and a counter
    # ("<base64 of {"session": ...}>-118") decoded into three junk bytes and passed as not-text; it
    # became a Kafka key in clear. Innocent ids of the same shape stay as they are.
    token = base64.urlsafe_b64encode(json.dumps({"session": SECRET}).encode()).decode().rstrip("=")
    for text in (f"{token}-118", f"ctx-1 {token}-118-7", f"{token}_v2"):
        assert SECRET not in M.mask_text(text), text
    clean = base64.urlsafe_b64encode(b'{"note": "hello world, nothing here"}').decode().rstrip("=") + "-3"
    assert M.mask_text(clean) == clean and M.mask_text("ctx-abcdefghijklmnopq-118") == "ctx-abcdefghijklmnopq-118"


def test_connection_strings_and_hf_tokens() -> None:
    conn = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={SECRET}==;EndpointSuffix=core.windows.net"
    out = M.mask_text(conn)
    assert SECRET not in out and "AccountName=acct" in out
    assert "hf_" + SECRET + "abcdefghijk" not in M.mask_text("use hf_" + SECRET + "abcdefghijk now")


def test_emails_as_keys() -> None:
    out = M.mask({"per_user": {EMAIL: {"calls": 3}}})
    assert not leaks(out, EMAIL) and list(out["per_user"].values()) == [{"calls": 3}]


def test_dead_letters_get_the_key_rules_too() -> None:
    broken = f'{{"request": {{"user_token": "{SECRET}", "X-Client-Secret": "{SECRET}", "accessKey": "{SECRET}"}}, "oops": '
    letter = make_dead_letter(stage="ingest", origin="t", reason="invalid_json", error="bad", original=broken, masker=M)
    assert SECRET not in letter.original and "user_token" in letter.original
    valid = json.dumps({"headers": [{"name": "Authorization", "value": SECRET}]})
    letter = make_dead_letter(stage="ingest", origin="t", reason="schema", error="bad", original=valid, masker=M)
    assert SECRET not in letter.original
    header_dump = f"POST /x HTTP/1.1\r\nCookie: a=1; sid={SECRET}\r\nX-Api-Key: {SECRET}\r\n"
    letter = make_dead_letter(stage="ingest", origin="t", reason="schema", error="bad", original=header_dump, masker=M)
    assert SECRET not in letter.original and "POST /x" in letter.original


def test_cloudevent_source_and_kafka_key_are_masked() -> None:
    ctx = IngestContext(masker=M, tenant="acme")
    record = samples.cloudevent(source=f"https://gw:{SECRET}@gateway.example.com/events", requestid=EMAIL)
    p = get_format("cloudevents")(record, ctx)
    assert SECRET not in p.envelope.source and "gateway.example.com" in p.envelope.source
    assert EMAIL not in p.key and p.key == p.envelope.request_id  # the same pseudonym: partitions still join


def test_crafted_nesting_is_bounded_not_a_crash() -> None:
    # Each URL-encoding layer adds two characters: 3,000 layers in 9 KB. Decoding stops after a few.
    out = M.mask_text("%25" * 3000 + "41 " + f"password={SECRET}")
    assert SECRET not in out
    nested = f"password={SECRET} and the rest"
    for _ in range(2):
        nested = base64.b64encode(nested.encode()).decode()
    assert M.mask_text(f"blob {nested}") == f"blob {REDACTED}"
