"""Slow and idle peers for the API's connection limits (slowloris), and what a process holds."""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import time
from collections.abc import Iterator
from pathlib import Path

# What each kind of slow peer sends, then it sends nothing more and keeps the socket open.
PARTIAL_HEADERS = b"POST /api/v1/executions/batch-status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
SLOW_BODY = (
    b"POST /api/v1/executions/batch-status HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    b'{"execution_ids": ['
)
IDLE_AFTER_ONE = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
KINDS = (PARTIAL_HEADERS, SLOW_BODY, IDLE_AFTER_ONE)
# The state of a listening socket in /proc/net/tcp.
LISTEN = "0A"
# A peer that sends a megabyte of one header value without ever ending it.
HUGE_HEADER = PARTIAL_HEADERS + b"a" * 1_048_576


def usage(pid: int) -> tuple[int, int]:
    """(resident set in KiB, open descriptors) of process `pid`, from /proc."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss, len(list(Path(f"/proc/{pid}/fd").iterdir()))


def client_sockets(pid: int, port: int) -> int:
    """How many descriptors of process `pid` are TCP connections accepted on `port` (its Redis
    connections and listening socket are not counted), from /proc."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] != LISTEN:
                inodes.add(fields[9])
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(fd)
            count += target.startswith("socket:[") and target[8:-1] in inodes
    return count


@contextlib.contextmanager
def slow_peers(port: int, count: int, huge: int = 0) -> Iterator[list[socket.socket]]:
    """`count` connections to 127.0.0.1:`port`, a third of each kind of KINDS, plus `huge`
    that send HUGE_HEADER; every one is closed on exit."""
    peers: list[socket.socket] = []
    try:
        for n in range(count + huge):
            peer = socket.create_connection(("127.0.0.1", port), timeout=10)
            peers.append(peer)
            with contextlib.suppress(OSError):  # the server may refuse part of it and close
                peer.sendall(HUGE_HEADER if n >= count else KINDS[n % len(KINDS)])
        yield peers
    finally:
        for peer in peers:
            peer.close()


def closed_by_server(
    peers: list[socket.socket], within_s: float, enough: int = 0
) -> list[socket.socket]:
    """Those of `peers` the server closed (end of stream, or reset) within `within_s`, or as
    soon as `enough` of them are; what it sent before closing is read and dropped."""
    open_ = set(peers)
    with selectors.DefaultSelector() as selector:
        for peer in peers:
            peer.setblocking(False)
            selector.register(peer, selectors.EVENT_READ, peer)
        deadline = time.monotonic() + within_s
        enough = enough or len(peers)
        while len(peers) - len(open_) < enough and (left := deadline - time.monotonic()) > 0:
            for key, _ in selector.select(left):
                peer = key.data
                try:
                    data = peer.recv(65_536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    selector.unregister(peer)
                    open_.discard(peer)
    return [peer for peer in peers if peer not in open_]
