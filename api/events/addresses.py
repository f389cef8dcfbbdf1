"""Where a webhook may send: public internet addresses only.

A webhook must not let an official make the server call its own network (the database, the
metrics, a router's admin page). The host is checked when the webhook is registered, and
again at every delivery: a name can resolve to a public address at registration and to
``127.0.0.1`` an hour later (DNS rebinding). Each delivery resolves the name once, checks
every address, and connects to the checked address (``pinned``), so no second lookup can
swap it; TLS still verifies the certificate against the name (the ``sni_hostname``
extension of httpcore). ``CONGDONGSO_WEBHOOK_PRIVATE_TARGETS`` lifts the rule (tests, a
receiver on the same machine).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import NamedTuple

import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


async def resolve(host: str) -> list[Address]:
    """Every address ``host`` resolves to (an IP literal: itself); none when it does not."""
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, ValueError):  # UnicodeError (a ValueError): a label IDNA cannot encode
        return []
    return sorted({ipaddress.ip_address(info[4][0]) for info in found}, key=str)


def public(addresses: list[Address]) -> bool:
    return bool(addresses) and all(address.is_global for address in addresses)


async def public_host(url: str) -> bool:
    """Whether every address the URL's host resolves to is a public one."""
    try:
        host = httpx.URL(url).host
    except (httpx.InvalidURL, ValueError):  # e.g. a bracketed host that is no IPv6 address
        return False
    return bool(host) and public(await resolve(host))


class Pinned(NamedTuple):
    url: str  # the URL with the checked address in place of the name
    host: str  # the Host header: the name (and port) as registered
    extensions: dict[str, str]  # the name for TLS (SNI and certificate check)


class Refused(NamedTuple):
    reason: str  # logged as the attempt's error


async def pinned(url: str, private_ok: bool) -> Pinned | Refused:
    """Resolve the URL's host once, check it, and aim the request at that address."""
    target = httpx.URL(url)
    addresses = await resolve(target.host)
    if not addresses:
        return Refused("host not resolved")
    if not private_ok and not public(addresses):
        return Refused("refused: the host resolves to a non-public address")
    return Pinned(
        url=str(target.copy_with(host=str(addresses[0]))),
        host=target.netloc.decode("ascii"),
        extensions={"sni_hostname": target.host} if target.scheme == "https" else {},
    )
