"""One guarded outbound HTTP client for everything the server fetches or sends: image URLs (GET), webhooks (POST)
and uploadEndpoint uploads (PUT). It exists to stop server-side request forgery (SSRF).

For every request and every redirect hop the client:

1. allows only the configured schemes and refuses URLs with userinfo (``user:pass@``);
2. resolves the host and refuses the request if *any* answer is not a global address (loopback, private, link-local
   incl. cloud metadata, CGNAT, multicast, reserved, and IPv6 forms that embed IPv4: mapped, NAT64, 6to4, Teredo),
   unless the operator allowlisted the host name or the address (``GuardSettings.allow_hosts``);
3. connects to the validated IP ("pins" it) and sends the original name as the ``Host`` header and, for https, as
   the TLS SNI name that the certificate is verified against, so a second DNS answer cannot redirect the connection
   (DNS rebinding);
4. follows at most ``max_redirects`` redirects by hand, checking each hop as above;
5. bounds connect time, total time per call and (for GET) the response size.

Proxy environment variables are ignored: a proxy would make the address checks meaningless. Error messages name
the host and the reason, never a response body or the full URL (upload URLs often carry signed credentials).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import ipaddress
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar, Union

import httpx

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Resolver = Callable[[str, int], Union[list[str], Awaitable[list[str]]]]
"""(host, port) -> IP address strings; may be sync or async."""
Body = Union[bytes, Path, None]

T = TypeVar("T")
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_BODY_HEADERS = frozenset({"content-type", "content-length", "transfer-encoding"})
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_FILE_CHUNK = 1024 * 1024

# Prefixes that Python's `is_global` misses (3.11 calls NAT64/6to4 addresses global although they can embed
# 127.0.0.1), or that tunnel to arbitrary IPv4 targets; refused outright.
_EMBEDDING_PREFIXES: tuple[tuple[ipaddress.IPv6Network, str], ...] = (
    (ipaddress.IPv6Network("64:ff9b::/96"), "a NAT64 address"),
    (ipaddress.IPv6Network("64:ff9b:1::/48"), "a local-use NAT64 address"),
    (ipaddress.IPv6Network("2002::/16"), "a 6to4 address"),
    (ipaddress.IPv6Network("2001::/32"), "a Teredo address"),
)
_CGNAT = ipaddress.IPv4Network("100.64.0.0/10")
_METADATA = ipaddress.IPv4Address("169.254.169.254")


class BlockedURLError(Exception):
    """The URL or an address it resolves to is not allowed; the message says why."""


class FetchError(Exception):
    """Network failure, timeout, HTTP error status (GET) or a response over the byte cap."""


@dataclass(frozen=True)
class GuardSettings:
    allow_hosts: tuple[str, ...] = ()
    """Host names, IP addresses or CIDR networks ("localhost", "127.0.0.1", "10.1.0.0/16", "[::1]") that may be
    reached even though they are not global addresses."""
    allowed_schemes: tuple[str, ...] = ("http", "https")
    max_redirects: int = 3
    max_bytes: int = 10 * 1024 * 1024
    """Cap on a GET response body (after content decoding)."""
    connect_timeout: float = 5.0
    total_timeout: float = 30.0
    """Deadline for one whole call: resolution, every redirect hop and the body."""


@functools.lru_cache(maxsize=32)
def _parse_allowlist(entries: tuple[str, ...]) -> tuple[frozenset[str], tuple[IPNetwork, ...]]:
    """Split allowlist entries into normalised host names and IP networks (a bare address is a /32 or /128)."""
    names: set[str] = set()
    networks: list[IPNetwork] = []
    for entry in entries:
        text = entry.strip().lower().removeprefix("[").removesuffix("]")
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            names.add(text.rstrip("."))
    return frozenset(names), tuple(networks)


def _unmap(ip: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped IPv6 address (::ffff:a.b.c.d), else the address itself."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _refusal_reason(ip: IPAddress) -> str | None:
    """Why `ip` may not be contacted, as "a ... address", or None for a global address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            inner = _refusal_reason(ip.ipv4_mapped)
            return None if inner is None else f"an IPv4-mapped form of {ip.ipv4_mapped}, {inner}"
        for network, reason in _EMBEDDING_PREFIXES:
            if ip in network:
                return reason
        if ip.is_site_local:
            return "a site-local address"
    if ip.is_unspecified:
        return "an unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip == _METADATA:
        return "a link-local address (cloud metadata service)"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip in _CGNAT:
        return "a shared (CGNAT) address"
    # Reserved before private: Python files 240.0.0.0/4 under both, and "reserved" is the accurate word.
    if ip.is_reserved:
        return "a reserved address"
    if ip.is_private:
        return "a private address"
    if not ip.is_global:
        return "a non-global address"
    return None


def _allowlisted(ip: IPAddress, networks: tuple[IPNetwork, ...]) -> bool:
    return any(candidate in network for candidate in {ip, _unmap(ip)} for network in networks)


def check_address(ip: IPAddress, settings: GuardSettings) -> None:
    """Raise BlockedURLError unless `ip` is a global address or is inside `settings.allow_hosts`."""
    _, networks = _parse_allowlist(settings.allow_hosts)
    if _allowlisted(ip, networks):
        return
    reason = _refusal_reason(ip)
    if reason is not None:
        raise BlockedURLError(f"refused: {ip} is {reason}")


async def _system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


async def _file_chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := await asyncio.to_thread(file.read, _FILE_CHUNK):
            yield chunk


class GuardedClient:
    """Async HTTP client that only reaches addresses allowed by `settings` (see the module docstring).

    `resolver` replaces DNS (the default is the event loop's getaddrinfo); tests use it to make names "resolve"
    anywhere without any traffic.
    """

    def __init__(self, settings: GuardSettings, resolver: Resolver | None = None):
        self.settings = settings
        self._resolver: Resolver = resolver or _system_resolver
        self._allow_names, self._allow_networks = _parse_allowlist(settings.allow_hosts)
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            trust_env=False,
            timeout=httpx.Timeout(settings.total_timeout, connect=settings.connect_timeout),
            # No connection reuse: a pooled TLS connection is keyed by IP, so it could carry a request for a
            # different host name than the one its certificate was verified for.
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": "ltx-runtime"},
        )

    async def __aenter__(self) -> GuardedClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    async def get_bytes(self, url: str) -> tuple[bytes, str | None]:
        """GET `url` and return (body, Content-Type). Non-2xx statuses and bodies over `max_bytes` raise FetchError."""
        return await self._within_deadline(self._get_bytes(url))

    async def post_json(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        """POST a JSON body and return the final status code (non-2xx is returned, not raised)."""
        headers = {"Content-Type": "application/json", **headers}
        return await self._within_deadline(self._status_of("POST", url, body, headers))

    async def put_bytes(
        self, url: str, body: bytes | Path, content_type: str, headers: dict[str, str] | None = None
    ) -> int:
        """PUT bytes or a file's contents (streamed, with Content-Length) and return the final status code."""
        headers = {**(headers or {}), "Content-Type": content_type}
        if isinstance(body, Path):
            headers["Content-Length"] = str(body.stat().st_size)
        return await self._within_deadline(self._status_of("PUT", url, body, headers))

    async def _within_deadline(self, call: Awaitable[T]) -> T:
        """Run one whole call (DNS, redirects, body) under `total_timeout`, mapping httpx errors to FetchError."""
        try:
            return await asyncio.wait_for(call, self.settings.total_timeout)
        except asyncio.TimeoutError as exc:
            raise FetchError(f"timed out (limit {self.settings.total_timeout:g} s)") from exc
        except httpx.TimeoutException as exc:
            raise FetchError(f"timed out: {type(exc).__name__}") from exc
        except httpx.ConnectError as exc:
            raise FetchError(f"could not connect: {exc}") from exc
        except (httpx.InvalidURL, UnicodeError) as exc:
            # A redirect's Location that httpx can join but not send (`http:\\host\\path`), or a host name that is
            # not valid IDNA: no retry can fix either.
            raise BlockedURLError(f"refused: invalid URL ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            # Other httpx messages can quote bytes the server sent; name only the kind of failure.
            raise FetchError(f"network error: {type(exc).__name__}") from exc

    async def _get_bytes(self, url: str) -> tuple[bytes, str | None]:
        response = await self._send("GET", url, None, {})
        try:
            if not response.is_success:
                raise FetchError(f"HTTP {response.status_code} from {response.request.headers['host']}")
            limit = self.settings.max_bytes
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > limit:
                raise FetchError(f"response exceeds {limit} bytes")
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"response exceeds {limit} bytes")
                chunks.append(chunk)
            return b"".join(chunks), response.headers.get("content-type")
        finally:
            await response.aclose()

    async def _status_of(self, method: str, url: str, body: Body, headers: dict[str, str]) -> int:
        response = await self._send(method, url, body, headers)
        await response.aclose()
        return response.status_code

    async def _send(self, method: str, url: str, body: Body, headers: dict[str, str]) -> httpx.Response:
        """Send with manual, re-checked redirects; returns the final response, still streaming."""
        current = self._parse(url)
        for hop in range(self.settings.max_redirects + 1):
            response = await self._send_pinned(method, current, body, headers)
            location = response.headers.get("location")
            if response.status_code not in _REDIRECT_STATUSES or location is None:
                return response
            await response.aclose()
            if hop == self.settings.max_redirects:
                break
            try:
                target = self._parse(current.join(location))
            except httpx.InvalidURL:
                raise BlockedURLError("refused: redirect to an invalid URL") from None
            method, body, headers = _redirected(response.status_code, method, body, headers, current, target)
            current = target
        raise BlockedURLError(f"refused: too many redirects (more than {self.settings.max_redirects})")

    def _parse(self, url: str | httpx.URL) -> httpx.URL:
        return parse_url(url, self.settings.allowed_schemes)

    async def _send_pinned(self, method: str, url: httpx.URL, body: Body, headers: dict[str, str]) -> httpx.Response:
        """Connect to a validated address of `url`'s host, moving to the next one only if connecting fails."""
        host = url.raw_host.decode("ascii")
        addresses = await self._validated_addresses(host, url.port or (443 if url.scheme == "https" else 80))
        for ip in addresses[:-1]:
            try:
                return await self._client.send(self._pinned_request(method, url, ip, body, headers), stream=True)
            except httpx.ConnectError:
                continue
        return await self._client.send(self._pinned_request(method, url, addresses[-1], body, headers), stream=True)

    def _pinned_request(
        self, method: str, url: httpx.URL, ip: IPAddress, body: Body, headers: dict[str, str]
    ) -> httpx.Request:
        """A request to `ip` that still names the original host in Host and, for https, in SNI (which is also the
        name the certificate is verified against)."""
        host = url.raw_host.decode("ascii")
        sni = url.scheme == "https" and _ip_literal(host) is None
        return self._client.build_request(
            method,
            url.copy_with(host=str(ip)),
            content=_file_chunks(body) if isinstance(body, Path) else body,
            headers={**headers, "Host": url.netloc.decode("ascii")},
            extensions={"sni_hostname": host} if sni else {},
        )

    async def _validated_addresses(self, host: str, port: int) -> list[IPAddress]:
        """The addresses to connect to, after refusing the host if any of its addresses is refused."""
        literal = _ip_literal(host)
        if literal is not None:
            check_address(literal, self.settings)
            return [_unmap(literal)]
        try:
            answer = self._resolver(host, port)
            if inspect.isawaitable(answer):
                answer = await answer
            addresses = [ipaddress.ip_address(text) for text in answer]
        except (OSError, ValueError) as exc:
            raise FetchError(f"could not resolve {host}: {exc}") from exc
        if not addresses:
            raise FetchError(f"could not resolve {host}: no addresses")
        if host.rstrip(".") not in self._allow_names:
            for ip in addresses:
                reason = None if _allowlisted(ip, self._allow_networks) else _refusal_reason(ip)
                if reason is not None:
                    raise BlockedURLError(f"refused: {host} resolves to {ip}, which is {reason}")
        return list(dict.fromkeys(_unmap(ip) for ip in addresses))


def parse_url(url: str | httpx.URL, schemes: tuple[str, ...] = ("http", "https")) -> httpx.URL:
    """Check what can be checked without DNS: syntax, scheme, userinfo, presence of a host (BlockedURLError says
    what is wrong). The task validators call it too, so that a URL accepted with a task is one this client tries."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, UnicodeError):
        raise BlockedURLError("refused: invalid URL") from None
    if parsed.scheme not in schemes:
        raise BlockedURLError(f"refused: scheme '{parsed.scheme}' is not allowed")
    if parsed.userinfo:
        raise BlockedURLError("refused: URLs with credentials (user:password@) are not allowed")
    if not parsed.raw_host:
        raise BlockedURLError("refused: URL has no host")
    return parsed


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _redirected(
    status: int, method: str, body: Body, headers: dict[str, str], source: httpx.URL, target: httpx.URL
) -> tuple[str, Body, dict[str, str]]:
    """Method, body and headers for the next hop, the way browsers do it."""
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", None
        headers = {name: value for name, value in headers.items() if name.lower() not in _BODY_HEADERS}
    if (source.scheme, source.raw_host, source.port) != (target.scheme, target.raw_host, target.port):
        headers = {name: value for name, value in headers.items() if name.lower() not in _CREDENTIAL_HEADERS}
    return method, body, headers
