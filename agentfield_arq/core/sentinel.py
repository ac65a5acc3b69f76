"""Sentinel URLs, read: `redis+sentinel://[[user]:password@]host:port[,host:port...]/service[/db]`
names the sentinels, the service they monitor (`sentinel monitor <service> ...`) and the
primary's database and credentials. Parsed here, with no Redis client, so that settings can
refuse an unusable one at start-up and `connect` and the arq bridge read it alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

SENTINEL_SCHEME = "redis+sentinel"
DEFAULT_SENTINEL_PORT = 26379


@dataclass(frozen=True)
class SentinelAddress:
    """A `redis+sentinel://` URL, read: the sentinels, the service they monitor, the primary's
    database and credentials."""

    sentinels: list[tuple[str, int]]
    service: str
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def sentinel_address(url: str) -> SentinelAddress | None:
    """`url` read as a Sentinel URL; None if it is a plain Redis URL. Raises ValueError,
    naming the part, if it is a Sentinel URL that cannot be used."""
    parts = urlsplit(url)
    if parts.scheme != SENTINEL_SCHEME:
        return None
    hosts = parts.netloc.rpartition("@")[2]
    sentinels = [_host_port(entry) for entry in hosts.split(",")]
    service, _, db = parts.path.strip("/").partition("/")
    if not service:
        raise ValueError("a redis+sentinel URL names its service: .../<service>[/<db>]")
    if db and not db.isdigit():
        raise ValueError(f"a redis+sentinel URL's database is a number, not '{db}'")
    return SentinelAddress(
        sentinels=sentinels,
        service=unquote(service),
        db=int(db or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def _host_port(entry: str) -> tuple[str, int]:
    text = entry.strip()
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        port = rest.removeprefix(":")
    else:
        host, _, port = text.partition(":")
    if not host or (port and not port.isdigit()):
        raise ValueError(f"a redis+sentinel URL lists host:port sentinels, not '{entry}'")
    return host, int(port or DEFAULT_SENTINEL_PORT)
