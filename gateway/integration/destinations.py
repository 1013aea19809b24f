"""Where status callbacks may go: public addresses only, unless the installation names
the private networks its document system lives in.

A callback URL comes from the document system, which a compromised or careless
integrator controls: without a check the gateway would POST, from inside the network,
to its own loopback services, a cloud metadata endpoint (169.254.169.254) or any
intranet host (server-side request forgery). The host is resolved and every address
checked when the callback is sent (so that a name re-pointed after submission is
caught), and the connection goes to the address that was checked, never to a second
resolution; a literal address or a name that already resolves to a refused address is
refused at submission too.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

__all__ = ["CallbackTarget", "DestinationPolicy", "DestinationRefused"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DestinationRefused(ValueError):
    """The callback URL is not an absolute http(s) URL, or its host is (or resolves to)
    an address the installation does not allow; the message says which, for the
    integrator."""


@dataclass(frozen=True, slots=True)
class CallbackTarget:
    """A checked destination: the URL as given, the host name (for the Host header and
    TLS), and the address to connect to."""

    url: str
    host: str
    address: Address

    def pinned_url(self) -> str:
        """``url`` with its host replaced by the checked address (brackets for IPv6)."""
        parts = urlsplit(self.url)
        literal = f"[{self.address}]" if self.address.version == 6 else str(self.address)
        netloc = literal if parts.port is None else f"{literal}:{parts.port}"
        return parts._replace(netloc=netloc).geturl()


class DestinationPolicy:
    """Public (globally routable) addresses are allowed; any other (loopback,
    link-local, private, shared, multicast, reserved, unspecified) only when it lies in
    one of ``allowed_networks`` (CIDR strings, e.g. ``10.20.0.0/16``). Refusals name
    the URL as ``what`` and the setting that allows a network as ``setting``."""

    def __init__(
        self,
        allowed_networks: Sequence[str] = (),
        *,
        what: str = "callback_url",
        setting: str = "callback_allowed_networks",
    ) -> None:
        self.allowed: tuple[Network, ...] = tuple(
            ipaddress.ip_network(n, strict=False) for n in allowed_networks
        )
        self.what, self.setting = what, setting

    def check_url(self, url: str) -> str:
        """``url`` (stripped) when it is an absolute http(s) URL whose host, if it is an
        address or resolves now, is allowed. Raises DestinationRefused."""
        host, _ = _host_and_port(url, self.what)
        try:
            addresses = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = _resolve(host, url, self.what, strict=False)
        for address in addresses:
            self._check(address, host)
        return url.strip()

    def target(self, url: str) -> CallbackTarget:
        """The destination to connect to now: ``url``'s host resolved, every address
        checked, the first one chosen. Raises DestinationRefused (also when the name
        does not resolve)."""
        host, _ = _host_and_port(url, self.what)
        addresses = _resolve(host, url, self.what, strict=True)
        for address in addresses:
            self._check(address, host)
        return CallbackTarget(url.strip(), host, addresses[0])

    def _check(self, address: Address, host: str) -> None:
        plain = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        address = plain or address
        if address.is_global and not address.is_multicast:
            return
        if any(address in network for network in self.allowed):
            return
        shown = host if host == str(address) else f"{host} ({address})"
        raise DestinationRefused(
            f"{self.what} points at {shown}, a loopback, link-local or private address;"
            f" the installation must allow that network ({self.setting})"
        )


def _host_and_port(url: str, what: str) -> tuple[str, int]:
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DestinationRefused(f"{what} must be an absolute http(s) URL")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError as exc:
        raise DestinationRefused(f"{what} has an invalid port") from exc
    return parts.hostname, port


def _resolve(host: str, url: str, what: str, *, strict: bool) -> list[Address]:
    """The addresses ``host`` resolves to (each once, in resolver order); none when it
    does not resolve and not ``strict``."""
    _, port = _host_and_port(url, what)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        if strict:
            raise DestinationRefused(f"the host of {what}, {host}, does not resolve") from exc
        return []
    found: list[Address] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found
