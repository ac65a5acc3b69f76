"""Hostile input against a real API process (uvicorn with our protocol) over the session's
Redis: slow and idle connections are closed and their descriptors released, limits answer
with our error bodies, and schemathesis draws from the served /openapi.json with every check
on and finds no server error and no answer that contradicts the document."""

from __future__ import annotations

import contextlib
import http.client
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import System, deployed
from tests.e2e.slow import client_sockets, closed_by_server, slow_peers, usage
from tests.e2e.waits import poll

pytestmark = pytest.mark.e2e

HEADER_TIMEOUT_S = 2
BODY_TIMEOUT_S = 3
KEEP_ALIVE_S = 2
SLOW_PEERS = 500
HUGE_PEERS = 20
# Generous: the timeouts above are a few seconds; a loaded machine may take much longer.
CLOSE_WITHIN_S = 90.0
FUZZ_EXAMPLES = 25


@pytest.fixture(scope="module")
def edge(e2e_redis: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    """The API alone (no worker, no agent), with short connection timeouts."""
    with deployed(
        e2e_redis,
        tmp_path_factory.mktemp("logs"),
        workers=0,
        agent=False,
        header_timeout_s=HEADER_TIMEOUT_S,
        body_timeout_s=BODY_TIMEOUT_S,
        keep_alive_timeout_s=KEEP_ALIVE_S,
    ) as system:
        yield system


def _pid(system: System) -> int:
    return system.processes["api"].pid


def test_500_slow_or_idle_connections_are_closed_and_their_descriptors_released(
    edge: System,
) -> None:
    pid, port = _pid(edge), edge.api_port
    rss_before, fds_before = usage(pid)
    with slow_peers(port, SLOW_PEERS, huge=HUGE_PEERS) as peers:
        rss_held, fds_held = usage(pid)
        # An EOF from the server on each: it accepted every one and let it go (a connection
        # left in the listen backlog would get none).
        assert len(closed_by_server(peers, CLOSE_WITHIN_S)) == len(peers)
    poll(lambda: client_sockets(pid, port) == 0, "the API to release them", CLOSE_WITHIN_S)
    # 20 peers each sent a megabyte of header: none of it is kept (httptools alone kept it).
    assert rss_held - rss_before < 64 * 1024, (rss_before, rss_held, fds_before, fds_held)
    assert edge.http.get("/api/v1/health").status_code == 200


def test_connections_past_the_cap_are_closed_on_arrival(edge: System) -> None:
    url = edge.start_replica("capped", max_connections="5", header_timeout_s="600")
    port = int(url.rsplit(":", 1)[1])
    with contextlib.ExitStack() as stack:
        connect = ("127.0.0.1", port)
        peers = [stack.enter_context(socket.create_connection(connect)) for _ in range(8)]
        closed = closed_by_server(peers, CLOSE_WITHIN_S, enough=3)
        assert len(closed) >= 3
        still_open = [peer for peer in peers if peer not in closed]
        # The replica's own health check may still hold a place: at most the cap stay open.
        assert len(still_open) - len(closed_by_server(still_open, 0.5)) <= 5


def test_an_unreadable_request_is_400_in_our_error_shape(edge: System) -> None:
    with socket.create_connection(("127.0.0.1", edge.api_port)) as peer:
        peer.sendall(b"GET /\x00 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = peer.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b'"code":"invalid_request"' in answer


def test_too_many_or_too_large_headers_are_431_in_our_error_shape(edge: System) -> None:
    many = {f"X-{n}": "a" for n in range(150)}
    for headers in (many, {"X-Big": "a" * 20_000}):
        connection = http.client.HTTPConnection("127.0.0.1", edge.api_port, timeout=30)
        connection.request("GET", "/api/v1/health", headers={**edge.http.headers, **headers})
        answer = connection.getresponse()
        assert answer.status == 431
        assert b'"code":"headers_too_large"' in answer.read()
        assert answer.getheader("connection") == "close"
        connection.close()


def test_a_keep_alive_connection_survives_a_deep_body_and_a_bad_query(edge: System) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", edge.api_port, timeout=30)
    headers = {**edge.http.headers, "Content-Type": "application/json"}
    deep = b'{"input": {"x": ' + b"[" * 1000 + b"]" * 1000 + b"}}"
    connection.request("POST", "/api/v1/execute/async/n.r", body=deep, headers=headers)
    first = connection.getresponse()
    assert (first.status, first.getheader("connection")) == (400, None)
    assert b"json_too_deep" in first.read()
    connection.request("GET", "/api/v1/webhooks/dead?limit=%C2%B2", headers=edge.http.headers)
    second = connection.getresponse()  # same connection: http.client does not reconnect
    assert second.status == 400
    assert b"query parameter limit" in second.read()
    connection.request("GET", "/api/v1/health", headers=edge.http.headers)
    assert connection.getresponse().status == 200
    connection.close()


def test_odd_bytes_never_answer_5xx(edge: System) -> None:
    json_headers = {"Content-Type": "application/json"}
    probes = [
        ("POST", "/api/v1/executions/batch-status", b'{"execution_ids": ["\x00"]}', json_headers),
        (
            "POST",
            "/api/v1/executions/batch-status",
            b'{"execution_ids": ["\xff\xfe"]}',
            json_headers,
        ),
        ("POST", "/api/v1/execute/async/a.b", b"\x00" * 1000, json_headers),
        ("POST", "/api/v1/execute/async/a.b", b'{"input": {}}', {"Content-Type": "text/plain"}),
        ("POST", "/api/v1/execute/async/a.b", b"{" * 2_000_000, json_headers),
        ("GET", "/api/v1/nodes/%00%ff", None, {}),
        ("GET", "/api/v1/webhooks/dead?limit=%EF%BC%95&cursor=%00", None, {}),
        ("GET", "/api/v1/health", None, {"Host": "rebound.example"}),
    ]
    for method, path, body, headers in probes:
        answer = edge.http.request(method, path, content=body, headers=headers)
        assert 400 <= answer.status_code < 500, (method, path, answer.text)
        assert answer.json()["code"], answer.text


def _auth_config(system: System) -> str:
    """schemathesis's config naming the key the harness's client sends, under the security
    scheme of the document it belongs to, so that the `ignored_auth` check can leave it out."""
    lines = []
    for name, value in system.http.headers.items():
        if name.lower() == "authorization" and value.lower().startswith("bearer "):
            lines += ["[auth.openapi.bearer]", f'bearer = "{value.split(" ", 1)[1]}"']
        elif name.lower() == "x-api-key":
            lines += ["[auth.openapi.apiKey]", f'api_key = "{value}"']
    return "\n".join(lines) + "\n"


def test_schemathesis_finds_no_server_error_and_no_answer_off_the_document(
    edge: System, tmp_path: Path
) -> None:
    register = {"id": "fuzz", "base_url": "http://127.0.0.1:9", "reasoners": [{"id": "r"}]}
    assert edge.http.post("/api/v1/nodes/register", json=register).status_code == 201
    config = tmp_path / "schemathesis.toml"
    config.write_text(_auth_config(edge))
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [str(st), "--config-file", str(config), "run", f"{edge.api_url}/openapi.json",
         "--checks", "all",
         "--max-examples", str(FUZZ_EXAMPLES), "--generation-deterministic", "--workers", "1",
         "--no-color", "--request-timeout", "30",
         # 501 by design: AgentField's DID registration, which this control plane lacks.
         "--exclude-path", "/api/v1/did/register",
         # A stream without end (SSE): no answer completes for a fuzzer to check;
         # test_contract.py and test_agentfield_memory.py read it.
         "--exclude-path", "/api/v1/memory/events/sse",
         # Every execution's event stream answers 200 and streams until the client leaves: each
         # example would end only at the request timeout. Its query and Last-Event-ID are
         # checked in tests/integration/test_events.py; one execution's stream (an unknown id
         # answers 404 at once) stays in.
         "--exclude-path", "/api/v1/events",
         # 503 not_ready by design: this API runs without a worker (test_metrics.py checks it).
         "--exclude-path", "/ready",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path,
    )  # fmt: skip
    summary = (run.stdout + run.stderr)[-20_000:]
    assert run.returncode == 0, summary
    assert " passed" in summary, summary
    assert "failure" not in summary, summary
