"""A webhook block is checked before it is stored; the error names the field."""

from __future__ import annotations

import pytest

from agentfield_arq.core.webhooks import validate
from agentfield_arq.kernel.errors import InvalidWebhook


def test_a_valid_webhook_is_accepted_with_its_secret_and_headers() -> None:
    spec = validate({"url": "https://hooks.example.com/x", "secret": "s", "headers": {"A": "b"}})
    assert spec.url == "https://hooks.example.com/x"
    assert spec.headers == {"A": "b"}


@pytest.mark.parametrize(
    ("block", "field"),
    [
        ({"url": "ftp://example.com"}, "webhook.url"),
        ({"url": "https://user:pw@example.com"}, "webhook.url"),
        ({"url": "https:///nohost"}, "webhook.url"),
        ({"url": "https://example.com", "secret": "x" * 4097}, "webhook.secret"),
        ({"url": "https://example.com", "headers": {f"h{i}": "v" for i in range(21)}}, "headers"),
        ({"url": "https://example.com", "headers": {"A": "x" * 513}}, "webhook.headers"),
        ({"url": "https://example.com", "headers": {"A": "x\r\nB: y"}}, "webhook.headers"),
        ({"url": "https://example.com", "headers": {"X-A": "é"}}, "webhook.headers.X-A"),
        ({"url": "https://example.com", "headers": {"X(A)": "v"}}, "webhook.headers"),
        ({"url": "https://example.com", "headers": {"Webhook-Signature": "v1,x"}}, "replaced"),
        ({"url": "https://example.com", "headers": {"content-type": "text/plain"}}, "replaced"),
        ({"secret": "no url"}, "url"),
        ("just a string", "webhook"),
    ],
)
def test_an_invalid_webhook_is_refused_naming_the_field(block: object, field: str) -> None:
    with pytest.raises(InvalidWebhook, match=field):
        validate(block)
