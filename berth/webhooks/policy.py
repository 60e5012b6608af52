"""Which webhook URLs Berth may call: checked when a run is created and again on connect.

The policy comes from `langgraph.json` `webhooks.url` (the keys LangGraph projects use):

    {"webhooks": {"url": {
        "require_https": false,        # refuse http:// URLs
        "allowed_domains": ["hooks.example.com", "*.example.org"],
        "allowed_ports": [443, 8443],
        "disable_loopback": true,      # false: loopback addresses and relative URLs allowed
        "max_url_length": 4096,
        "allow_private_networks": false  # Berth: RFC 1918 / ULA / CGNAT targets allowed
    }}}

Cloud metadata endpoints, link-local, multicast, unspecified and reserved addresses are
always refused: no webhook legitimately lives there, and they are the usual SSRF prizes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import socket
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from berth.core import errors

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: instance-metadata services of the big clouds (AWS, GCP, Azure, Alibaba, Oracle, ECS)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",
        "169.254.170.2",
        "169.254.169.253",
        "fd00:ec2::254",
        "fd00:ec2::253",
        "100.100.100.200",
        "192.0.0.192",
    )
)
METADATA_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data"}
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
#: creation-time lookups must not hold a request for long; connect time is authoritative
_CREATE_RESOLVE_TIMEOUT = 2.0


class Refused(errors.InvalidInput):
    """The webhook URL is not allowed."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Target:
    """A checked absolute URL, split into the parts the connect-time check needs."""

    url: str
    scheme: str
    host: str
    port: int


def embedded_ipv4(ip: IPAddress) -> IPAddress:
    """The IPv4 address an IPv6 one carries (mapped, 6to4, NAT64), else `ip` itself.

    `::ffff:127.0.0.1` reaches 127.0.0.1; judging it as IPv6 would let it through.
    """
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.sixtofour is not None:
            return ip.sixtofour
        if ip in _NAT64:
            return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip


def classify(ip: IPAddress) -> str | None:
    """Why `ip` is not a public address (a short noun), or None when it is."""
    if ip in METADATA_ADDRESSES:
        return "cloud metadata"
    inner = embedded_ipv4(ip)
    if inner is not ip:
        return classify(inner)
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_private and not ip.is_reserved:
        return "private"
    if isinstance(ip, ipaddress.IPv4Address) and ip in ipaddress.ip_network("100.64.0.0/10"):
        return "private"  # carrier-grade NAT: someone's internal network
    if not ip.is_global:
        return "reserved"
    return None


@dataclasses.dataclass(frozen=True, kw_only=True)
class UrlPolicy:
    """The rules a webhook URL must follow. The defaults are the safe ones."""

    require_https: bool = False
    #: exact host names, or `*.suffix` for any subdomain of suffix; empty: any host
    allowed_domains: tuple[str, ...] = ()
    #: empty: any port
    allowed_ports: tuple[int, ...] = ()
    #: refuse loopback targets and relative (same-server) URLs
    disable_loopback: bool = True
    allow_private_networks: bool = False
    max_url_length: int = 4096
    #: `http.disable_webhooks`: runs keep no webhook and nothing is sent
    muted: bool = False

    @classmethod
    def from_config(cls, url: Mapping[str, Any] | None, *, muted: bool = False) -> UrlPolicy:
        """Build from `webhooks.url`; raise `ConfigError` on a malformed value."""
        url = dict(url or {})

        def flag(key: str, default: bool) -> bool:
            value = url.get(key, default)
            if not isinstance(value, bool):
                raise errors.ConfigError(f"webhooks.url.{key} must be true or false")
            return value

        domains = url.get("allowed_domains") or []
        ports = url.get("allowed_ports") or []
        if not isinstance(domains, list) or not all(isinstance(d, str) and d for d in domains):
            raise errors.ConfigError("webhooks.url.allowed_domains must be a list of host names")
        if not isinstance(ports, list) or not all(
            isinstance(p, int) and not isinstance(p, bool) and 0 < p < 65536 for p in ports
        ):
            raise errors.ConfigError("webhooks.url.allowed_ports must be a list of port numbers")
        length = url.get("max_url_length", cls.max_url_length)
        if not isinstance(length, int) or isinstance(length, bool) or length <= 0:
            raise errors.ConfigError("webhooks.url.max_url_length must be a positive integer")
        return cls(
            require_https=flag("require_https", False),
            allowed_domains=tuple(d.lower().rstrip(".") for d in domains),
            allowed_ports=tuple(ports),
            disable_loopback=flag("disable_loopback", True),
            allow_private_networks=flag("allow_private_networks", False),
            max_url_length=length,
            muted=muted,
        )

    # -- static checks (no network) ------------------------------------------

    def is_relative(self, url: str) -> bool:
        return url.startswith("/") and not url.startswith("//")

    def check_static(self, url: str) -> Target | None:
        """Check what the URL says, without resolving it.

        Returns the parsed target, or None for an allowed relative URL (the server's
        own routes, which the deliverer calls on its own address).
        """
        if len(url) > self.max_url_length:
            raise Refused(f"webhook URL is longer than {self.max_url_length} characters")
        if any(c in url for c in "\r\n\t\x00 "):
            raise Refused("webhook URL must not contain whitespace or control characters")
        if self.is_relative(url):
            if self.disable_loopback:
                raise Refused(
                    "relative webhook URLs (calls to this server) are disabled; "
                    "set webhooks.url.disable_loopback to false to allow them"
                )
            return None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise Refused(f"webhook URL is malformed: {exc}") from None
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise Refused("webhook URL must be an absolute http:// or https:// URL")
        if self.require_https and scheme != "https":
            raise Refused("webhook URL must use https")
        host = (parts.hostname or "").rstrip(".")
        if not host:
            raise Refused("webhook URL has no host")
        port = port or (443 if scheme == "https" else 80)
        if self.allowed_domains and not self._domain_allowed(host):
            raise Refused(f"webhook host {host!r} is not in webhooks.url.allowed_domains")
        if self.allowed_ports and port not in self.allowed_ports:
            raise Refused(f"webhook port {port} is not in webhooks.url.allowed_ports")
        if host in METADATA_HOSTS:
            raise Refused(f"webhook host {host!r} is a cloud metadata service")
        if host == "localhost" or host.endswith(".localhost"):
            self.check_address(ipaddress.ip_address("127.0.0.1"), host)
        ip = _literal(host)
        if ip is not None:
            self.check_address(ip, host)
        return Target(url=url, scheme=scheme, host=host, port=port)

    def _domain_allowed(self, host: str) -> bool:
        for entry in self.allowed_domains:
            if entry.startswith("*."):
                if host.endswith(entry[1:]) and len(host) > len(entry) - 1:
                    return True
            elif host == entry:
                return True
        return False

    def check_address(self, ip: IPAddress, host: str) -> None:
        """Refuse a resolved (or literal) address the policy does not allow."""
        reason = classify(ip)
        if reason is None:
            return
        if reason == "loopback" and not self.disable_loopback:
            return
        if reason == "private" and self.allow_private_networks:
            return
        hint = ""
        if reason == "loopback":
            hint = "; set webhooks.url.disable_loopback to false to allow it"
        elif reason == "private":
            hint = "; set webhooks.url.allow_private_networks to true to allow it"
        shown = host if host == str(ip) else f"{host} ({ip})"
        raise Refused(f"webhook target {shown} is a {reason} address{hint}")

    # -- with resolution -----------------------------------------------------

    async def resolve(self, target: Target) -> list[IPAddress]:
        """Every address `target.host` resolves to, each checked; raises `Refused`.

        Raises `OSError` when the name does not resolve (a network error: retryable).
        """
        ip = _literal(target.host)
        if ip is not None:
            addresses = [ip]
        else:
            infos = await asyncio.get_running_loop().getaddrinfo(
                target.host, target.port, type=socket.SOCK_STREAM
            )
            addresses = list(dict.fromkeys(_literal_or_raise(str(info[4][0])) for info in infos))
        # Every address, not just the first: a name with one public and one private
        # address could otherwise be steered to the private one.
        for address in addresses:
            self.check_address(address, target.host)
        return addresses

    async def admit(self, url: str | None) -> str | None:
        """The webhook to store with a new run: `url` checked, or None (none, or muted).

        A host that does not resolve now is let through: DNS may be briefly down, and
        the deliverer resolves and checks again before every connection anyway.
        """
        if url is None or self.muted:
            return None
        target = self.check_static(url)
        if target is not None:
            try:
                async with asyncio.timeout(_CREATE_RESOLVE_TIMEOUT):
                    await self.resolve(target)
            except (OSError, TimeoutError):
                pass
        return url


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None


def _literal_or_raise(address: str) -> IPAddress:
    ip = _literal(address)
    if ip is None:
        raise OSError(f"resolver returned a non-address {address!r}")
    return ip
