"""Both signature schemes match independent implementations, and `verify` refuses forgeries."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook

from agentfield_arq import InvalidSignature, verify
from agentfield_arq.kernel.signing import (
    Scheme,
    agentfield_signature,
    signature_headers,
    standard_key,
    standard_signature,
)

BODY = b'{"event":"execution.completed","execution_id":"exec_1","result":{"x":1}}'
NOW = 1_800_000_000


def test_the_standard_signature_matches_the_specification_s_example() -> None:
    signature = standard_signature(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_agentfield_signature_is_hex_hmac_sha256_of_the_raw_body() -> None:
    expected = hmac.new(b"s3cret", BODY, hashlib.sha256).hexdigest()
    assert agentfield_signature("s3cret", BODY) == f"sha256={expected}"


def test_a_whsec_secret_keys_with_its_base64_part_and_any_other_with_its_bytes() -> None:
    assert standard_key("whsec_" + base64.b64encode(b"key bytes").decode()) == b"key bytes"
    assert standard_key("plain secret") == b"plain secret"
    assert standard_key("whsec_not base64!") == b"whsec_not base64!"


@pytest.mark.parametrize("secret", ["whsec_" + base64.b64encode(b"k" * 24).decode(), "s3cret"])
def test_the_standardwebhooks_library_verifies_our_headers(secret: str) -> None:
    headers = signature_headers(secret, "msg_1", int(datetime.now(UTC).timestamp()), BODY)
    # The library base64-decodes any str secret; a non-whsec secret's key is its raw bytes.
    library = Webhook(secret if secret.startswith("whsec_") else secret.encode())
    assert library.verify(BODY, headers) == json.loads(BODY)


def test_without_a_secret_only_the_id_and_timestamp_are_sent() -> None:
    assert signature_headers(None, "msg_1", NOW, BODY) == {
        "webhook-id": "msg_1",
        "webhook-timestamp": str(NOW),
    }


def test_verify_accepts_both_schemes_and_returns_the_decoded_body() -> None:
    headers = signature_headers("s3cret", "msg_1", NOW, BODY)
    for scheme in ("standard", "agentfield"):
        assert verify(BODY, headers, "s3cret", scheme=scheme, now=NOW)["execution_id"] == "exec_1"


def test_verify_by_default_refuses_a_delivery_stripped_of_its_timestamped_signature() -> None:
    headers = signature_headers("s3cret", "msg_1", NOW, BODY)
    del headers["webhook-signature"]
    with pytest.raises(InvalidSignature):
        verify(BODY, headers, "s3cret", now=NOW)


def test_verify_reads_header_names_in_any_case() -> None:
    headers = {k.upper(): v for k, v in signature_headers("s3cret", "msg_1", NOW, BODY).items()}
    assert verify(BODY, headers, "s3cret", now=NOW)["event"] == "execution.completed"


@pytest.mark.parametrize("scheme", ["standard", "agentfield"])
def test_verify_refuses_a_changed_body(scheme: Scheme) -> None:
    headers = signature_headers("s3cret", "msg_1", NOW, BODY)
    with pytest.raises(InvalidSignature):
        verify(BODY.replace(b"1}", b"2}"), headers, "s3cret", scheme=scheme, now=NOW)


@pytest.mark.parametrize("scheme", ["standard", "agentfield"])
def test_verify_refuses_another_secret(scheme: Scheme) -> None:
    headers = signature_headers("s3cret", "msg_1", NOW, BODY)
    with pytest.raises(InvalidSignature):
        verify(BODY, headers, "other", scheme=scheme, now=NOW)


def test_verify_refuses_a_timestamp_outside_the_tolerance() -> None:
    headers = signature_headers("s3cret", "msg_1", NOW, BODY)
    with pytest.raises(InvalidSignature, match="webhook-timestamp"):
        verify(BODY, headers, "s3cret", now=NOW + 301)
    with pytest.raises(InvalidSignature, match="webhook-timestamp"):
        verify(BODY, headers, "s3cret", now=NOW - 301)
    assert verify(BODY, headers, "s3cret", now=NOW + 30, tolerance_s=60)


def test_verify_refuses_a_signature_replayed_under_another_webhook_id() -> None:
    headers = signature_headers("s3cret", "msg_1", NOW, BODY)
    headers["webhook-id"] = "msg_2"
    with pytest.raises(InvalidSignature):
        verify(BODY, headers, "s3cret", now=NOW)


def test_verify_accepts_any_one_of_several_signatures() -> None:
    headers = signature_headers("s3cret", "msg_1", NOW, BODY)
    headers["webhook-signature"] = "v1,bm90IGl0 " + headers["webhook-signature"]
    assert verify(BODY, headers, "s3cret", scheme="standard", now=NOW)


def test_verify_names_the_missing_headers() -> None:
    with pytest.raises(InvalidSignature, match="X-AgentField-Signature"):
        verify(BODY, {}, "s3cret", scheme="agentfield", now=NOW)
    with pytest.raises(InvalidSignature, match="webhook-id"):
        verify(BODY, {"x-agentfield-signature": "sha256=00"}, "s3cret", scheme="standard")


# ---------------------------------------------------------------------------- exact edges
# (added where mutation testing showed the suite would not notice a change)


def test_a_bare_whsec_prefix_is_a_raw_secret() -> None:
    assert standard_key("whsec_") == b"whsec_"


def test_an_unpadded_whsec_secret_is_padded_before_decoding() -> None:
    assert standard_key("whsec_YWI") == b"ab"


def test_a_whsec_secret_that_is_not_strict_base64_is_a_raw_secret() -> None:
    assert standard_key("whsec_YW*I") == b"whsec_YW*I"


def test_a_timestamp_exactly_at_the_tolerance_is_accepted() -> None:
    headers = signature_headers("s3cret", "msg_1", NOW - 300, BODY)
    assert verify(BODY, headers, "s3cret", now=NOW, tolerance_s=300) == json.loads(BODY)


def test_any_one_of_several_signatures_may_match() -> None:
    headers = signature_headers("s3cret", "msg_1", NOW, BODY)
    headers["webhook-signature"] += " v1,bm90IGl0"
    assert verify(BODY, headers, "s3cret", now=NOW) == json.loads(BODY)


def test_verify_refusals_name_what_is_wrong() -> None:
    headers = signature_headers("s3cret", "msg_1", NOW, BODY)
    with pytest.raises(InvalidSignature, match=r"^no webhook-signature matches the body$"):
        verify(BODY, headers, "other", now=NOW)
    with pytest.raises(InvalidSignature, match=r"^webhook-timestamp is not unix seconds$"):
        verify(BODY, {**headers, "webhook-timestamp": "soon"}, "s3cret", now=NOW)
    with pytest.raises(InvalidSignature, match=r"^X-AgentField-Signature does not match the body$"):
        verify(BODY, headers, "other", scheme="agentfield")
    not_json = signature_headers("s3cret", "msg_1", NOW, b"{")
    with pytest.raises(InvalidSignature, match=r"^the signed body is not JSON$"):
        verify(b"{", not_json, "s3cret", now=NOW)
    with pytest.raises(ValueError, match=r"^unknown signature scheme 'both'$"):
        verify(BODY, headers, "s3cret", scheme="both")  # type: ignore[arg-type]


def test_a_whsec_secret_with_a_character_outside_base64_is_a_raw_secret() -> None:
    # A lenient decoder would drop the '*' and decode the rest.
    assert standard_key("whsec_YW*Jj") == b"whsec_YW*Jj"
