"""Download a registered dataset's files -- only when asked (``stgkd data fetch NAME``).

* Files are fetched from the public locations the community uses (DCRNN's GitHub repository for the
  adjacency pickles, a Zenodo record for ``pems-bay.h5``, the ASTGNN / STD-MAE repositories for
  PEMS0x), tried in order. Files without a direct URL (``metr-la.h5`` lives in a Google Drive folder)
  are listed with where to get them by hand.
* HTTPS with certificate verification only; plain ``http://`` is accepted for loopback hosts (a local
  mirror, the tests), never for the internet, and redirects may not downgrade to it.
* Every file is written to a temporary file in the target folder and moved into place with
  :func:`os.replace` (:func:`stgkd.files.atomic_write`) once complete and, where the digest is known,
  once its SHA-256 matches; a failed or mismatching download leaves nothing behind.
* ``base_url`` (argument, or ``$STGKD_DATA_URL``) replaces every location by ``{base_url}/{name}/{file}``
  (a mirror laid out like the data root).
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from stgkd.data.datasets import DatasetInfo, RemoteFile, get_dataset
from stgkd.errors import DataError
from stgkd.files import atomic_write

__all__ = ["ENV_BASE_URL", "FetchResult", "download_file", "fetch", "sha256sum"]

#: environment variable overriding every download location with a mirror
ENV_BASE_URL = "STGKD_DATA_URL"

_LOOPBACK = {"127.0.0.1", "localhost", "::1"}
_CHUNK = 1 << 16


@dataclass
class FetchResult:
    """What :func:`fetch` did: files downloaded, already present, and left for the user to get."""

    name: str
    folder: Path
    downloaded: list[Path] = field(default_factory=list)
    present: list[Path] = field(default_factory=list)
    manual: list[RemoteFile] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not [f for f in self.manual if not f.optional]


def sha256sum(path: str | Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        return
    if parts.scheme == "http" and parts.hostname in _LOOPBACK:
        return
    raise DataError(f"{url}: refusing to download over {parts.scheme or 'no scheme'}; only https (or http to 127.0.0.1) is allowed")


class _NoDowngradeRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001 - urllib's signature
        _check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _opener() -> urllib.request.OpenerDirector:
    context = ssl.create_default_context()  # verifies certificates and host names
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoDowngradeRedirect())


class _Unreachable(Exception):
    """The host could not be reached (offline, DNS, refused, timed out)."""


def download_file(
    url: str,
    dest: str | Path,
    *,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` atomically, checking ``sha256`` when given.

    Raises:
        DataError: refused scheme, HTTP error, offline host, truncated transfer or checksum mismatch
            (in every case no file is left at ``dest`` or beside it).
    """
    try:
        return _download(url, Path(dest), sha256=sha256, progress=progress, timeout=timeout)
    except _Unreachable as exc:
        raise DataError(
            f"cannot reach {urllib.parse.urlsplit(url).hostname} to download {Path(dest).name} ({exc}); "
            f"are you offline? Download {url} by hand and put it at {dest}"
        ) from None


def _download(url: str, dest: Path, *, sha256: str | None, progress: bool, timeout: float) -> Path:
    _check_url(url)
    dest.parent.mkdir(parents=True, exist_ok=True)
    request = urllib.request.Request(url, headers={"User-Agent": "stgkd-data-fetch"})
    try:
        response = _opener().open(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DataError(f"{url}: HTTP {exc.code} {exc.reason} while downloading {dest.name}") from None
    except (urllib.error.URLError, socket.timeout, ConnectionError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, ssl.SSLError):
            raise DataError(f"{url}: TLS certificate verification failed ({reason}); not downloading {dest.name}") from None
        raise _Unreachable(str(reason)) from None
    with response:
        return atomic_write(dest, lambda tmp: _receive(response, tmp, url=url, dest=dest, sha256=sha256,
                                                        progress=progress))


def _receive(response, tmp: Path, *, url: str, dest: Path, sha256: str | None, progress: bool) -> None:
    """Stream ``response`` into ``tmp``; raise when it is cut short or its SHA-256 is not ``sha256``."""
    from tqdm import tqdm

    digest = hashlib.sha256()
    received = 0
    length = response.headers.get("Content-Length")
    total = int(length) if length and length.isdigit() else None
    with open(tmp, "wb") as out, tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                                      disable=not progress, file=sys.stderr, leave=False) as bar:
        while True:
            try:
                block = response.read(_CHUNK)
            except (socket.timeout, ConnectionError, OSError) as exc:
                raise DataError(f"{url}: connection lost after {received} bytes of {dest.name} ({exc})") from None
            if not block:
                break
            out.write(block)
            digest.update(block)
            received += len(block)
            bar.update(len(block))
    if total is not None and received != total:
        raise DataError(f"{url}: received {received} of {total} bytes of {dest.name}; the download was cut short")
    got = digest.hexdigest()
    if sha256 is not None and got.lower() != sha256.lower():
        raise DataError(f"{dest.name}: SHA-256 mismatch (expected {sha256}, got {got}) for {url}; file discarded")


def fetch(
    name: str | DatasetInfo,
    *,
    root: str | Path | None = None,
    base_url: str | None = None,
    force: bool = False,
    progress: bool = True,
    timeout: float = 60.0,
) -> FetchResult:
    """Download the files of dataset ``name`` into ``<root>/<name>/`` that are not there yet.

    Args:
        name: registered dataset name (or its :class:`DatasetInfo`).
        root: data root (default: see :func:`stgkd.data.datasets.data_root`).
        base_url: mirror replacing every location by ``{base_url}/{name}/{file}`` (default:
            ``$STGKD_DATA_URL`` if set).
        force: download again files that are already present.
        progress: show a tqdm progress bar on stderr.
        timeout: socket timeout in seconds.

    Files already present are checked against their SHA-256 where known (a mismatch is an error;
    re-download with ``force``). Files without a direct URL end up in :attr:`FetchResult.manual`.
    """
    info = get_dataset(name) if isinstance(name, str) else name
    folder = info.folder(root)
    result = FetchResult(name=info.name, folder=folder)
    base_url = base_url if base_url is not None else os.environ.get(ENV_BASE_URL) or None
    for remote in info.files:
        existing = remote.find(folder)
        if existing is not None and not force:
            if remote.sha256 is not None and sha256sum(existing).lower() != remote.sha256.lower():
                raise DataError(
                    f"{existing}: present but its SHA-256 differs from the release's; delete it or fetch with --force"
                )
            result.present.append(existing)
            continue
        urls = (f"{base_url.rstrip('/')}/{info.name}/{remote.name}",) if base_url else remote.urls
        if not urls:
            result.manual.append(remote)
            continue
        dest = folder / remote.name
        failures: list[str] = []
        for url in urls:
            try:
                result.downloaded.append(_download(url, dest, sha256=remote.sha256, progress=progress, timeout=timeout))
                break
            except _Unreachable as exc:
                failures.append(f"{urllib.parse.urlsplit(url).hostname}: {exc}")
            except DataError as exc:
                if "SHA-256 mismatch" in str(exc) or len(urls) == 1:
                    raise
                failures.append(str(exc))
        else:
            where = f"; or get it from {remote.manual}" if remote.manual else ""
            raise DataError(
                f"{info.name}: could not download {remote.name} ({'; '.join(failures)}); are you offline? "
                f"Download it by hand from {urls[0]}{where} and put it in {folder}"
            )
    return result
