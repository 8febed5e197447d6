"""Fetching a submission's remote predictions file: https only, to public addresses, no redirect
to anything else, a timeout, and never more bytes than the metadata declares.

A leaderboard entry may keep a large predictions file elsewhere (``remote_predictions`` in its
metadata: URL, size and SHA-256); ``mmbench leaderboard validate --allow-download`` fetches it
with :func:`fetch`. Everything a URL could be made to reach instead (a local file, a service on
the maintainer's network, an endless stream) is refused before or while reading.
"""

from __future__ import annotations

import ipaddress
import socket
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from mmbench.errors import MmbenchError

TIMEOUT_SECONDS = 30
CHUNK = 1 << 20


def check_url(url: str) -> None:
    """Raise unless ``url`` is https to a host whose every address is public."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise MmbenchError(f"{url}: only https:// URLs are fetched")
    host = parts.hostname
    if not host:
        raise MmbenchError(f"{url}: no host name")
    try:
        infos = socket.getaddrinfo(host, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise MmbenchError(f"{url}: cannot resolve {host} ({exc})") from None
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if not address.is_global:
            raise MmbenchError(f"{url}: {host} is {address}, not a public address; refused")


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to another https URL on a public address."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, ANN201
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener() -> urllib.request.OpenerDirector:
    """The URL opener used for remote predictions: no file://, ftp:// or data: handlers, and
    redirects checked by :func:`check_url`."""
    director = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
        _HttpsOnlyRedirects(),
    ):
        director.add_handler(handler)
    return director


def copy_capped(source: IO[bytes], dest: Path, size: int, what: str) -> None:
    """Copy ``source`` to ``dest`` (atomically), failing as soon as it gives more than ``size``
    bytes, or if it ends with fewer."""
    tmp = dest.with_name(dest.name + ".part")
    got = 0
    try:
        with tmp.open("wb") as out:
            while chunk := source.read(min(CHUNK, size - got + 1)):
                got += len(chunk)
                if got > size:
                    raise MmbenchError(f"{what}: more than the declared {size:,} bytes; stopped reading")
                out.write(chunk)
        if got != size:
            raise MmbenchError(f"{what}: {got:,} bytes but the metadata declares {size:,}")
        tmp.replace(dest)
    finally:
        tmp.unlink(missing_ok=True)


def fetch(url: str, size: int, dest: Path) -> None:
    """Download ``url`` to ``dest``: https to a public address only, at most ``size`` bytes (the
    declared size of the compressed file), within :data:`TIMEOUT_SECONDS` per read."""
    check_url(url)
    try:
        with opener().open(url, timeout=TIMEOUT_SECONDS) as response:
            copy_capped(response, dest, size, url)
    except MmbenchError:
        raise
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise MmbenchError(f"{url}: cannot download ({getattr(exc, 'reason', exc)})") from None
