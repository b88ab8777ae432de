"""SSRF guard and HTTP client of outgoing webhooks: vet every address a URL resolves to, then connect
to the vetted address itself (never to the name again), so DNS rebinding cannot swap in another."""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from django.conf import settings

# Never a legitimate webhook target, even with WEBHOOK_ALLOW_PRIVATE: the cloud instance metadata
# services hand out credentials to whoever can make the server ask them.
METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure, OpenStack, DigitalOcean
        ipaddress.ip_address("169.254.170.2"),  # AWS ECS task metadata
        ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud
        ipaddress.ip_address("fd00:ec2::254"),  # AWS over IPv6
    }
)
METADATA_HOSTNAMES = frozenset({"metadata.google.internal", "metadata", "instance-data"})
CGNAT = ipaddress.ip_network("100.64.0.0/10")
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # reaches the IPv4 address in its last 32 bits
MAX_RESPONSE_BYTES = 64 * 1024


class UnsafeUrl(ValueError):
    """The URL must not be called: bad form, unresolvable, or resolves to a forbidden address."""


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_refusal(address: IPAddress, *, allow_private: bool) -> str | None:
    """Why `address` must not be called, or None when it may."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 reaches 127.0.0.1: judge the IPv4 address it carries (NAT64 and 6to4 too).
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return address_refusal(embedded, allow_private=allow_private)
    if allow_private:
        return None
    checks = [
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address"),
        (address.is_multicast, "a multicast address"),
        (address.is_unspecified, "an unspecified address"),
        (isinstance(address, ipaddress.IPv4Address) and address in CGNAT, "a shared (CGNAT) address"),
        (address.is_private, "a private address"),
        (address.is_reserved, "a reserved address"),
        (not address.is_global, "a non-public address"),
    ]
    for refused, why in checks:
        if refused:
            return why
    return None


@dataclass(frozen=True)
class Target:
    """A URL taken apart, with the addresses it resolved to, every one of them vetted."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: list[str] = field(default_factory=list)


def url_parse(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path with query) of an http(s) URL; UnsafeUrl when it is not one."""
    if any(character.isspace() or ord(character) < 32 or ord(character) == 127 for character in url):
        raise UnsafeUrl("The URL contains spaces or control characters; encode them (%20).")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"Not a valid URL ({exc}).") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeUrl("Only http and https URLs are allowed.")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrl("The URL has no host.")
    if parts.username or parts.password:
        raise UnsafeUrl("Credentials in the URL are not allowed; check the signature instead.")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return scheme, host, port or (443 if scheme == "https" else 80), path


def url_vet(url: str, *, allow_private: bool | None = None) -> Target:
    """Resolve the URL's host and refuse it if ANY of its addresses is forbidden (one bad record is
    enough: the connection could land on it). Raises UnsafeUrl with a message for people."""
    if allow_private is None:
        allow_private = settings.WEBHOOK_ALLOW_PRIVATE
    scheme, host, port, path = url_parse(url)
    if host.lower() in METADATA_HOSTNAMES:
        raise UnsafeUrl(f"{host} is a cloud metadata host.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"Could not resolve host {host}.") from exc
    addresses: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        text = str(sockaddr[0]).split("%", 1)[0]  # drop an IPv6 zone id
        address = ipaddress.ip_address(text)
        why = address_refusal(address, allow_private=allow_private)
        if why is not None:
            raise UnsafeUrl(f"{host} resolves to {address}, {why}.")
        if text not in addresses:
            addresses.append(text)
    if not addresses:
        raise UnsafeUrl(f"Could not resolve host {host}.")
    return Target(scheme=scheme, host=host, port=port, path=path, addresses=addresses)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Sends Host: <name> but connects to a vetted address."""

    def __init__(self, target: Target, *, connect_timeout: float, read_timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=connect_timeout)
        self.target = target
        self.read_timeout = read_timeout

    def _open_socket(self) -> socket.socket:
        last: OSError | None = None
        for address in self.target.addresses:
            try:
                sock = socket.create_connection((address, self.target.port), timeout=self.timeout)
            except OSError as exc:
                last = exc
                continue
            sock.settimeout(self.read_timeout)
            return sock
        assert last is not None
        raise last

    def connect(self) -> None:
        self.sock = self._open_socket()


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    """TLS to the vetted address, with SNI and the certificate checked against the host name."""

    def __init__(
        self, target: Target, *, connect_timeout: float, read_timeout: float, context: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(target, connect_timeout=connect_timeout, read_timeout=read_timeout)
        self.context = context

    def connect(self) -> None:
        sock = self._open_socket()
        context = self.context or ssl.create_default_context()
        try:
            self.sock = context.wrap_socket(sock, server_hostname=self.target.host)
        except BaseException:
            sock.close()
            raise


@dataclass
class PostResult:
    status_code: int | None
    latency_ms: int
    error: str
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def safe_post(
    url: str,
    *,
    body: bytes,
    headers: dict[str, str],
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    allow_private: bool | None = None,
) -> PostResult:
    """POST `body` to `url` through the SSRF guard. Never raises for network trouble: the result says
    what happened (status code, or an error in words). Redirects are not followed (a 3xx is an answer,
    not a success); at most MAX_RESPONSE_BYTES of the response are read."""
    started = time.monotonic()
    try:
        target = url_vet(url, allow_private=allow_private)
    except UnsafeUrl as exc:
        return PostResult(None, int((time.monotonic() - started) * 1000), f"refused: {exc}")
    return target_post(
        target, body=body, headers=headers, connect_timeout=connect_timeout, read_timeout=read_timeout,
        started=started,
    )  # fmt: skip


def target_post(
    target: Target,
    *,
    body: bytes,
    headers: dict[str, str],
    connect_timeout: float | None = None,
    read_timeout: float | None = None,
    ssl_context: ssl.SSLContext | None = None,
    started: float | None = None,
) -> PostResult:
    """POST to a vetted target: connect to its addresses, name the host in `Host` and in TLS (SNI and
    the certificate check), so what was vetted is what is called."""
    connect_timeout = settings.WEBHOOK_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
    read_timeout = settings.WEBHOOK_READ_TIMEOUT if read_timeout is None else read_timeout
    started = time.monotonic() if started is None else started

    def elapsed_ms() -> int:
        return int((time.monotonic() - started) * 1000)

    connection: _PinnedHTTPConnection
    if target.scheme == "https":
        connection = _PinnedHTTPSConnection(
            target, connect_timeout=connect_timeout, read_timeout=read_timeout, context=ssl_context
        )
    else:
        connection = _PinnedHTTPConnection(target, connect_timeout=connect_timeout, read_timeout=read_timeout)
    phase = "connect"
    try:
        connection.connect()
        phase = "read"
        connection.request("POST", target.path, body=body, headers=headers)
        response = connection.getresponse()
        latency = elapsed_ms()
        # A slow trickle must not hold the worker: stop reading at the read timeout overall.
        deadline = time.monotonic() + read_timeout
        chunks: list[bytes] = []
        remaining = MAX_RESPONSE_BYTES
        while remaining > 0 and time.monotonic() < deadline:
            chunk = response.read1(remaining) if hasattr(response, "read1") else response.read(remaining)
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return PostResult(response.status, latency, "", b"".join(chunks))
    except TimeoutError:
        limit = connect_timeout if phase == "connect" else read_timeout
        return PostResult(None, elapsed_ms(), f"timeout: no {phase} within {limit:g} s")
    except ssl.SSLError as exc:
        return PostResult(None, elapsed_ms(), f"TLS error: {exc}")
    except (OSError, http.client.HTTPException) as exc:
        return PostResult(None, elapsed_ms(), f"connection error: {type(exc).__name__}: {exc}"[:500])
    finally:
        connection.close()
