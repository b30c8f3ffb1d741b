"""SSRF guard for every URL the service reaches on a client's behalf: input URLs and webhook URLs.

A client-supplied URL must not let it probe our network (Postgres, Redis, the S3 endpoint, the cloud
metadata service at 169.254.169.254 / fd00:ec2::254). So:

* only ``https`` (``http`` too when ALLOW_HTTP_URLS, for tests), no ``user:pass@``;
* the host is resolved **once**; every address must be public (``ipaddress``'s ``is_global``, and
  none of private, loopback, link-local, multicast, reserved, unspecified, CGNAT 100.64/10;
  IPv4-mapped and 6to4/Teredo IPv6 are judged by the IPv4 address inside);
* the connection goes to that resolved IP (the URL's host is swapped for the IP, with ``Host`` and
  TLS SNI/certificate check still on the name), so DNS rebinding between check and connect does not
  help;
* redirects are followed by hand, each hop checked again; a size cap, and a **total** deadline on every
  request (URL_FETCH_TIMEOUT_S, WEBHOOK_TIMEOUT_S) that holds even against a server that dribbles its
  headers a byte at a time.

URL_ALLOWLIST lets tests and on-premise deployments reach named internal addresses: hosts, addresses or
CIDRs, each optionally scoped to a port or port range (``127.0.0.1:9371``, ``10.0.0.0/8:443``,
``images.internal:8443``, ``[::1]:8080``, ``127.0.0.1:31000-31999``). Scope them: an entry without a port
lets every client's URL reach every port of that address — Flower, Redis, Postgres on loopback.
The API checks at submit (fast refusal, a clear 422) and the worker checks again at fetch/POST time
(DNS may have changed since).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urljoin

import httpx

if TYPE_CHECKING:  # settings validates URL_ALLOWLIST with parse_allow_entry: this module sits below it
    from portrait.settings import Settings

IP = ipaddress.IPv4Address | ipaddress.IPv6Address
T = TypeVar("T")
REDIRECTS = (301, 302, 303, 307, 308)

# Ranges refused even where ``is_global`` says otherwise (or to be explicit about the ones that matter).
BLOCKED = [ipaddress.ip_network(n) for n in (
    "169.254.169.254/32",  # cloud metadata (AWS, GCP, Azure)
    "fd00:ec2::254/128",   # AWS metadata over IPv6
    "100.64.0.0/10",       # CGNAT shared space (RFC 6598)
    "192.0.0.0/24",        # IETF protocol assignments
    "198.18.0.0/15",       # benchmarking
    "64:ff9b::/96",        # NAT64: would reach an IPv4 address we did not check
)]


class UrlRefused(Exception):
    """The URL is not allowed (scheme, credentials, or an address that is not public)."""

    code = "url_not_allowed"  # the job's error code when it is an input URL (portrait/errors.py)


class UrlFetchError(Exception):
    """The URL was allowed but the fetch failed: status, size or time cap, connection error."""

    code = "input_fetch_failed"


@dataclass(frozen=True)
class Target:
    """A checked URL and the addresses it resolved to; requests go to ``ips[0]``."""

    url: httpx.URL
    ips: tuple[IP, ...]


def is_public(ip: IP) -> bool:
    """True for an address a client may make us connect to."""
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None:
            return is_public(inner)
    if any(ip in net for net in BLOCKED if net.version == ip.version):
        return False
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast
                                 or ip.is_reserved or ip.is_unspecified)


def resolve(host: str, port: int) -> tuple[IP, ...]:
    """All addresses of ``host`` (an IP literal resolves to itself). Tests monkeypatch this."""
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as e:
        raise UrlRefused(f"{host} does not resolve") from e
    seen: dict[IP, None] = {}
    for *_, sockaddr in infos:
        seen[ipaddress.ip_address(sockaddr[0].split("%", 1)[0])] = None
    return tuple(seen)


@dataclass(frozen=True)
class AllowEntry:
    """One URL_ALLOWLIST entry: a network or a host name, and the ports it covers (None = all)."""

    net: ipaddress.IPv4Network | ipaddress.IPv6Network | None
    host: str | None
    ports: tuple[int, int] | None

    def covers(self, host: str, ip: IP, port: int) -> bool:
        if self.ports is not None and not self.ports[0] <= port <= self.ports[1]:
            return False
        if self.net is not None:
            return ip.version == self.net.version and ip in self.net
        return self.host == host.lower().rstrip(".")


def _port_range(text: str, entry: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    if not lo.isdigit() or (hi and not hi.isdigit()):
        raise ValueError(f"URL_ALLOWLIST entry {entry!r}: bad port {text!r}")
    rng = (int(lo), int(hi or lo))
    if not 1 <= rng[0] <= rng[1] <= 65535:
        raise ValueError(f"URL_ALLOWLIST entry {entry!r}: ports must be 1..65535, low to high")
    return rng


def parse_allow_entry(entry: str) -> AllowEntry:
    """``host``, ``ip``, ``cidr``, each optionally ``:port`` or ``:lo-hi``; IPv6 with a port in brackets.

    A bare IPv6 address or CIDR (several colons, no brackets) has no port part.
    """
    text, ports = entry.strip(), None
    if text.startswith("["):
        close = text.find("]")
        rest = text[close + 1:] if close > 0 else "?"
        if rest and not rest.startswith(":"):
            raise ValueError(f"URL_ALLOWLIST entry {entry!r}: expected [address]:port")
        text, ports = text[1:close], (_port_range(rest[1:], entry) if rest else None)
    elif text.count(":") == 1:
        text, port = text.split(":")
        ports = _port_range(port, entry)
    if not text:
        raise ValueError(f"URL_ALLOWLIST entry {entry!r} names no host")
    try:
        return AllowEntry(ipaddress.ip_network(text, strict=False), None, ports)
    except ValueError:
        return AllowEntry(None, text.lower().rstrip("."), ports)


def _allowlisted(host: str, ip: IP, port: int, allowlist: list[str]) -> bool:
    return any(parse_allow_entry(e).covers(host, ip, port) for e in allowlist)


def check(url: str | httpx.URL, settings: Settings,
          resolver: Callable[[str, int], tuple[IP, ...]] | None = None) -> Target:
    """Validate ``url`` and resolve its host once; raise UrlRefused with a message fit for clients."""
    try:
        u = httpx.URL(str(url))
    except (httpx.InvalidURL, ValueError) as e:
        raise UrlRefused(f"not a valid URL: {e}") from e
    schemes = ("https", "http") if settings.allow_http_urls else ("https",)
    if u.scheme not in schemes:
        raise UrlRefused(f"only {' or '.join(schemes)} URLs are accepted, not {u.scheme or 'none'}")
    if u.userinfo:
        raise UrlRefused("credentials in URLs are not accepted")
    if not u.host:
        raise UrlRefused("the URL has no host")
    port = u.port or (443 if u.scheme == "https" else 80)
    ips = (resolver or resolve)(u.host, port)
    if not ips:
        raise UrlRefused(f"{u.host} does not resolve")
    for ip in ips:
        if not is_public(ip) and not _allowlisted(u.host, ip, port, settings.url_allowlist):
            raise UrlRefused(f"{u.host} resolves to {ip}, which is not a public address "
                             f"(nor allow-listed for port {port})")
    return Target(u, ips)


#: Name lookups run here, not on the event loop (getaddrinfo blocks and cannot be cancelled), and not
#: in the loop's default executor, which ``asyncio.run`` waits for: a lookup past the deadline is
#: abandoned to finish on its own.
_RESOLVER = ThreadPoolExecutor(max_workers=8, thread_name_prefix="urlguard-dns")


async def _check_async(url: str | httpx.URL, settings: Settings) -> Target:
    """``check`` inside the deadline: a slow DNS answer counts against it like a slow server."""
    return await asyncio.get_running_loop().run_in_executor(_RESOLVER, check, url, settings)


def _with_deadline(seconds: float, make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``make()`` on a fresh event loop, cancelled after ``seconds`` in all (raises TimeoutError).

    Why asyncio: httpx's sync timeouts bound each socket operation, not the request, so a server that
    sends its response headers one byte every few seconds held a worker for minutes. Cancellation of
    the task is a total deadline, whatever the server (or its DNS) does. Callers are sync (Celery
    tasks, threads).
    """
    async def run() -> T:
        async with asyncio.timeout(seconds):
            return await make()

    return asyncio.run(run())


@asynccontextmanager
async def _pinned(client: httpx.AsyncClient, method: str, target: Target, timeout: float,
                  **kw: object) -> AsyncIterator[httpx.Response]:
    """Send to the resolved IP; ``Host`` and TLS (SNI, certificate name) still use the URL's host."""
    u = target.url
    headers = dict(kw.pop("headers", None) or {})  # type: ignore[call-overload]
    headers["host"] = u.netloc.decode("ascii")
    extensions = {"sni_hostname": u.host} if u.scheme == "https" else {}
    req = client.build_request(method, u.copy_with(host=str(target.ips[0])), headers=headers,
                               extensions=extensions, timeout=timeout, **kw)  # type: ignore[arg-type]
    resp = await client.send(req, stream=True, follow_redirects=False)
    try:
        yield resp
    finally:
        await resp.aclose()


def fetch(url: str, settings: Settings, *, max_bytes: int | None = None) -> bytes:
    """GET an input URL: checked hop by hop, pinned, at most MAX_UPLOAD_BYTES, and all of it (every
    redirect, the headers, the body) within URL_FETCH_TIMEOUT_S."""
    limit = max_bytes or settings.max_upload_bytes
    total = settings.url_fetch_timeout_s
    current = url

    async def get() -> bytes:
        nonlocal current
        async with httpx.AsyncClient() as client:
            for _ in range(settings.url_max_redirects + 1):
                target = await _check_async(current, settings)
                async with _pinned(client, "GET", target, total) as r:
                    if r.status_code in REDIRECTS and "location" in r.headers:
                        current = urljoin(str(target.url), r.headers["location"])
                        continue
                    if r.status_code != 200:
                        raise UrlFetchError(f"GET {current} answered {r.status_code}")
                    declared = r.headers.get("content-length", "")
                    if declared.isdigit() and int(declared) > limit:
                        raise UrlFetchError(f"{current} is larger than {limit} bytes")
                    chunks, size = [], 0
                    async for chunk in r.aiter_bytes():
                        size += len(chunk)
                        if size > limit:
                            raise UrlFetchError(f"{current} is larger than {limit} bytes")
                        chunks.append(chunk)
                    return b"".join(chunks)
            raise UrlFetchError(f"GET {url}: more than {settings.url_max_redirects} redirects")

    try:
        return _with_deadline(total, get)
    except TimeoutError as e:
        raise UrlFetchError(f"GET {url} took longer than {total:g} s") from e
    except httpx.HTTPError as e:
        raise UrlFetchError(f"GET {current} failed: {type(e).__name__}") from e


def post(url: str, body: bytes | str, headers: dict[str, str], settings: Settings, timeout: float) -> int:
    """POST (webhooks): checked and pinned, redirects not followed, answered within ``timeout`` seconds
    in all (else ``httpx.TimeoutException``). Returns the status code."""
    async def send() -> int:
        target = await _check_async(url, settings)
        async with httpx.AsyncClient() as client, _pinned(client, "POST", target, timeout, content=body,
                                                          headers=headers) as r:
            return r.status_code

    try:
        return _with_deadline(timeout, send)
    except TimeoutError as e:
        raise httpx.TimeoutException(f"no complete answer within {timeout:g} s") from e
