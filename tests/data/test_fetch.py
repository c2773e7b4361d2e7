"""Downloads against a small file server on 127.0.0.1 (a thread in the test); no internet needed."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import numpy as np
import pytest

from stgkd.cli import main
from stgkd.data.datasets import DatasetInfo, RemoteFile, load_dataset
from stgkd.data.fetch import download_file, fetch
from stgkd.errors import DataError


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - http.server's signature
        pass


@pytest.fixture
def server(tmp_path):
    """Serves ``tmp_path / "www"`` on 127.0.0.1; yields ``(base_url, folder)``."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_download_with_checksum(server, tmp_path):
    base, www = server
    payload = bytes(range(256)) * 100
    (www / "blob.bin").write_bytes(payload)
    dest = tmp_path / "out" / "blob.bin"
    digest = hashlib.sha256(payload).hexdigest()
    assert download_file(f"{base}/blob.bin", dest, sha256=digest, progress=False) == dest
    assert dest.read_bytes() == payload
    assert _leftovers(dest.parent) == ["blob.bin"]  # no temporary file left


def test_checksum_mismatch_leaves_no_file(server, tmp_path):
    base, www = server
    (www / "blob.bin").write_bytes(b"not what the registry says")
    dest = tmp_path / "out" / "blob.bin"
    with pytest.raises(DataError, match=r"blob\.bin: SHA-256 mismatch \(expected 0{64}, got [0-9a-f]{64}\).*file discarded"):
        download_file(f"{base}/blob.bin", dest, sha256="0" * 64, progress=False)
    assert not dest.exists()
    assert _leftovers(dest.parent) == []


def test_http_error_and_refused_schemes(server, tmp_path):
    base, _ = server
    with pytest.raises(DataError, match=r"missing\.bin: HTTP 404"):
        download_file(f"{base}/missing.bin", tmp_path / "missing.bin", progress=False)
    for url in ("http://example.com/file.bin", "ftp://example.com/file.bin", "file:///etc/passwd"):
        with pytest.raises(DataError, match="refusing to download over"):
            download_file(url, tmp_path / "x.bin", progress=False)
    assert _leftovers(tmp_path) == ["www"]


def test_offline_gives_one_clear_message(tmp_path):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=r"cannot reach 127\.0\.0\.1 to download x\.bin .*are you offline\?"):
        download_file(f"http://127.0.0.1:{port}/x.bin", tmp_path / "x.bin", progress=False, timeout=5)


def test_fetch_offline_message_names_the_file_and_folder(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=r"tiny08: could not download PEMS08\.npz .*are you offline\? .*put it in .*tiny08"):
        fetch(_tiny_info(), root=tmp_path, base_url=f"http://127.0.0.1:{port}", progress=False, timeout=5)
    assert _leftovers(tmp_path / "tiny08") == []


def _tiny_info(sha: str | None = None, manual: bool = False) -> DatasetInfo:
    files = [RemoteFile("PEMS08.npz", urls=("https://example.invalid/PEMS08.npz",), sha256=sha),
             RemoteFile("PEMS08.csv", urls=("https://example.invalid/PEMS08.csv",))]
    if manual:
        files.append(RemoteFile("extra.h5", manual="a shared drive folder"))
    return DatasetInfo(
        name="tiny08", title="tiny", layout="astgcn", files=tuple(files), steps=48, nodes=3, channels=3,
        interval_minutes=5, split=(0.6, 0.2, 0.2), time_range=None, source="test",
    )


def _serve_pems(www: Path, folder: str) -> bytes:
    (www / folder).mkdir()
    values = np.arange(48 * 3 * 3, dtype=np.float64).reshape(48, 3, 3)
    np.savez(www / folder / "PEMS08.npz", data=values)
    (www / folder / "PEMS08.csv").write_text("from,to,cost\n0,1,1.0\n1,2,2.0\n")
    return (www / folder / "PEMS08.npz").read_bytes()


def test_fetch_dataset_from_mirror(server, tmp_path):
    base, www = server
    npz = _serve_pems(www, "tiny08")
    root = tmp_path / "root"
    result = fetch(_tiny_info(sha=hashlib.sha256(npz).hexdigest()), root=root, base_url=base, progress=False)
    assert result.complete
    assert result.downloaded == [root / "tiny08" / "PEMS08.npz", root / "tiny08" / "PEMS08.csv"]
    data = load_dataset(root / "tiny08")
    assert data.values.shape == (48, 3, 3) and data.timestamps[0].year == 2016  # PEMS08's known start
    again = fetch(_tiny_info(), root=root, base_url=base, progress=False)
    assert again.downloaded == [] and len(again.present) == 2


def test_fetch_lists_files_without_url_and_checks_present_digests(tmp_path):
    folder = tmp_path / "root" / "tiny08"
    folder.mkdir(parents=True)
    (folder / "PEMS08.npz").write_bytes(b"x")
    (folder / "PEMS08.csv").write_bytes(b"x")
    result = fetch(_tiny_info(manual=True), root=tmp_path / "root", progress=False)  # present: nothing fetched
    assert result.downloaded == [] and len(result.present) == 2
    assert not result.complete and [f.name for f in result.manual] == ["extra.h5"]
    with pytest.raises(DataError, match=r"PEMS08\.npz: present but its SHA-256 differs"):
        fetch(_tiny_info(sha="1" * 64), root=tmp_path / "root", progress=False)


def test_cli_fetch_against_loopback(server, isolated_data_root, capsys):
    base, www = server
    _serve_pems(www, "pems08")
    assert main(["data", "fetch", "pems08", "--base-url", base, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"downloaded: {isolated_data_root / 'pems08' / 'PEMS08.npz'}" in out
    assert (isolated_data_root / "pems08" / "PEMS08.csv").is_file()
    assert main(["data", "fetch", "pems08", "--root", str(isolated_data_root), "--base-url", base, "--no-progress"]) == 0
    assert "present:" in capsys.readouterr().out
    # the files are the tiny ones, not the 17856 x 170 release: the registered name refuses them
    assert main(["data", "info", "pems08"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "standard release has 17856 x 170 x 3" in err[0]
