"""The SSRF guard without services: which addresses are refused, pinning, redirects, caps."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import pytest
from harness import DribbleServer, FileServer

from portrait import urlguard
from portrait.settings import Settings
from portrait.urlguard import UrlFetchError, UrlRefused


def settings(**kw: object) -> Settings:
    return Settings(_env_file=None, **{"allow_http_urls": True, "url_allowlist": [], **kw})


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/a.jpg", "http://127.1.2.3/", "http://10.0.0.1/a.jpg", "http://172.16.5.4/",
    "http://192.168.1.1/", "http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/",
    "http://100.64.0.1/", "http://0.0.0.0/", "http://[::]/", "http://[::1]/", "http://224.0.0.1/",
    "http://240.0.0.1/", "http://[::ffff:127.0.0.1]/", "http://[::ffff:169.254.169.254]/",
    "http://[2002:7f00:1::]/", "http://[fe80::1]/", "http://198.18.0.1/", "http://[64:ff9b::a00:1]/",
])
def test_non_public_addresses_are_refused(url: str) -> None:
    with pytest.raises(UrlRefused, match="not a public address"):
        urlguard.check(url, settings())


def test_public_addresses_pass() -> None:
    for url in ("https://93.184.215.14/a.jpg", "https://[2606:4700::1111]/", "http://8.8.8.8/"):
        assert urlguard.check(url, settings()).ips


def test_scheme_credentials_and_names() -> None:
    with pytest.raises(UrlRefused, match="only https"):
        urlguard.check("http://8.8.8.8/", settings(allow_http_urls=False))
    with pytest.raises(UrlRefused, match="only https"):
        urlguard.check("file:///etc/passwd", settings())
    with pytest.raises(UrlRefused, match="credentials"):
        urlguard.check("https://user:pw@8.8.8.8/", settings())
    with pytest.raises(UrlRefused, match="not a public address"):
        urlguard.check("http://localhost:6379/", settings())  # a name is judged by what it resolves to
    with pytest.raises(UrlRefused, match="does not resolve"):
        urlguard.check("https://no-such-host.invalid/", settings())


def test_a_name_with_one_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urlguard, "resolve", lambda h, p: (ipaddress.ip_address("93.184.215.14"),
                                                           ipaddress.ip_address("10.1.2.3")))
    with pytest.raises(UrlRefused, match="10.1.2.3"):
        urlguard.check("https://images.example.com/a.jpg", settings())


def test_allowlist_by_cidr_and_by_host(monkeypatch: pytest.MonkeyPatch) -> None:
    assert urlguard.check("http://127.0.0.1:9/", settings(url_allowlist=["127.0.0.1/32"]))
    with pytest.raises(UrlRefused):
        urlguard.check("http://127.0.0.2:9/", settings(url_allowlist=["127.0.0.1/32"]))
    monkeypatch.setattr(urlguard, "resolve", lambda h, p: (ipaddress.ip_address("10.9.9.9"),))
    assert urlguard.check("https://images.internal/a.jpg", settings(url_allowlist=["images.internal"]))
    with pytest.raises(UrlRefused):
        urlguard.check("https://other.internal/a.jpg", settings(url_allowlist=["images.internal"]))


def test_allowlist_entries_can_name_a_port_or_range() -> None:
    s = settings(url_allowlist=["127.0.0.1:9371", "10.0.0.0/8:443", "images.internal:8000-8099", "[::1]:8080"])
    assert urlguard.check("http://127.0.0.1:9371/a", s)
    for refused in ("http://127.0.0.1:5555/api/worker/shutdown/x", "http://127.0.0.1/a", "http://[::1]:5555/",
                    "http://10.1.2.3:6379/"):
        with pytest.raises(UrlRefused, match="not a public address"):
            urlguard.check(refused, s)
    assert urlguard.check("https://10.1.2.3/a.jpg", s) and urlguard.check("http://[::1]:8080/", s)
    assert urlguard.check("http://127.0.0.1:9371/", settings(url_allowlist="127.0.0.1:9371,[::1]:8080"))


@pytest.mark.parametrize("entry", ["127.0.0.1:0", "127.0.0.1:99999", "127.0.0.1:x", "[::1]8080", ":80",
                                   "h:9-3"])
def test_a_malformed_allowlist_entry_fails_at_start_up(entry: str) -> None:
    with pytest.raises(ValueError, match="URL_ALLOWLIST"):
        settings(url_allowlist=[entry])


ROUTES = {"/to-metadata": "http://169.254.169.254/latest/meta-data/", "/to-img": "/img", "/loop": "/loop",
          "/to-ten": "http://10.0.0.1/img"}


def _route(path: str) -> tuple[int, dict[str, str], bytes]:
    if path in ROUTES:
        return 302, {"location": ROUTES[path]}, b""
    if path in ("/img", "/big"):
        return 200, {}, b"x" * (2048 if path == "/big" else 10)
    return 404, {}, b""


@pytest.fixture
def server() -> Iterator[tuple[str, list[str]]]:
    """Loopback server: /img (bytes), /big (2 KB), /to-metadata, /to-ten, /to-img (redirects), /loop."""
    srv = FileServer(_route)
    yield f"127.0.0.1:{srv.port}", srv.hosts
    srv.close()


def test_fetch_connects_to_the_checked_address(server: tuple[str, list[str]],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """DNS rebinding: the name is resolved once; the connection goes to that IP, Host keeps the name."""
    addr, hosts = server
    port = int(addr.split(":")[1])
    answers = iter([(ipaddress.ip_address("127.0.0.1"),)])  # a second lookup would raise StopIteration
    monkeypatch.setattr(urlguard, "resolve", lambda h, p: next(answers))
    data = urlguard.fetch(f"http://rebind.test:{port}/img", settings(url_allowlist=["127.0.0.1/32"]))
    assert data == b"x" * 10
    assert hosts == [f"rebind.test:{port}"]


def test_redirects_are_checked_hop_by_hop(server: tuple[str, list[str]]) -> None:
    addr, _ = server
    s = settings(url_allowlist=["127.0.0.1/32"])
    assert urlguard.fetch(f"http://{addr}/to-img", s) == b"x" * 10
    for path, where in (("/to-metadata", "169.254.169.254"), ("/to-ten", "10.0.0.1")):
        with pytest.raises(UrlRefused, match=where):
            urlguard.fetch(f"http://{addr}{path}", s)
    with pytest.raises(UrlFetchError, match="redirects"):
        urlguard.fetch(f"http://{addr}/loop", s)
    with pytest.raises(UrlRefused):
        urlguard.fetch(f"http://{addr}/img", settings())  # not allow-listed: loopback refused


def test_size_cap_and_status(server: tuple[str, list[str]]) -> None:
    addr, _ = server
    s = settings(url_allowlist=["127.0.0.1/32"])
    with pytest.raises(UrlFetchError, match="larger than 1000 bytes"):
        urlguard.fetch(f"http://{addr}/big", s, max_bytes=1000)
    with pytest.raises(UrlFetchError, match="404"):
        urlguard.fetch(f"http://{addr}/nope", s)


def test_webhook_post_is_guarded(server: tuple[str, list[str]]) -> None:
    with pytest.raises(UrlRefused):
        urlguard.post("http://169.254.169.254/hook", b"{}", {}, settings(), timeout=2)
    with pytest.raises(UrlRefused):
        urlguard.post(f"http://{server[0]}/hook", b"{}", {}, settings(), timeout=2)


def test_fetch_and_post_have_a_total_deadline_against_a_header_dribbling_server() -> None:
    """Each socket read returns a byte, so a per-read timeout never fires: the deadline is on the whole."""
    import time

    import httpx

    srv = DribbleServer(interval=0.2)
    try:
        s = settings(url_allowlist=[f"127.0.0.1:{srv.port}"], url_fetch_timeout_s=1.5)
        t0 = time.monotonic()
        with pytest.raises(UrlFetchError, match="longer than 1.5 s"):
            urlguard.fetch(f"{srv.url}/img.jpg", s)
        assert time.monotonic() - t0 < 3.0
        t0 = time.monotonic()
        with pytest.raises(httpx.TimeoutException):
            urlguard.post(f"{srv.url}/hook", b"{}", {}, s, timeout=1.0)
        assert time.monotonic() - t0 < 2.5
    finally:
        srv.close()


def test_a_slow_name_lookup_counts_against_the_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """getaddrinfo blocks (a resolver timing out takes 5 s a try): it must not run outside the deadline."""
    import time

    import httpx

    def slow_dns(host: str, port: int) -> tuple[ipaddress.IPv4Address, ...]:
        time.sleep(6)
        return (ipaddress.ip_address("93.184.215.14"),)

    monkeypatch.setattr(urlguard, "resolve", slow_dns)
    s = settings(url_fetch_timeout_s=1.0)
    t0 = time.monotonic()
    with pytest.raises(UrlFetchError, match="longer than 1 s"):
        urlguard.fetch("http://slow-dns.example/img.jpg", s)
    assert time.monotonic() - t0 < 2.0
    t0 = time.monotonic()
    with pytest.raises(httpx.TimeoutException):
        urlguard.post("http://slow-dns.example/hook", b"{}", {}, s, timeout=1.0)
    assert time.monotonic() - t0 < 2.0
