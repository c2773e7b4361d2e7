"""A study on a PostgreSQL server whose role has a password: the password, given in the ``--storage``
URL, is used to connect and appears in no file, no output and no attribute of the study (the server is
started on loopback by the ``postgres_password_url`` fixture; skipped with the reason where there is
none)."""

from __future__ import annotations

import json
import os
import subprocess
from urllib.parse import quote, quote_plus

import optuna
import pytest
from sqlalchemy.engine import make_url

from tuning.search import main
from tuning.storage import open_storage
from tuning_helpers import STUDY_PASSWORD, postgres_bin, search_args

#: the password as given, percent-encoded (as in the URL) and form-encoded
FORMS = sorted({STUDY_PASSWORD, quote(STUDY_PASSWORD, safe=""), quote_plus(STUDY_PASSWORD)})


def _leaks(text: str | bytes) -> list[str]:
    data = text if isinstance(text, bytes) else text.encode()
    return [form for form in FORMS if form.encode() in data]


@pytest.mark.slow
def test_the_storage_password_is_written_nowhere(tmp_path, tiny_space, tiny_teacher, postgres_password_url, capfd,
                                                caplog):
    url = postgres_password_url
    assert _leaks(url)  # the URL does carry the password
    masked = url.replace(quote(STUDY_PASSWORD, safe=""), "***")
    out = tmp_path / "study"
    args = search_args(out, tiny_space, tiny_teacher, n_trials=2, extra=["--study-name", "secret", "--storage", url,
                                                                         "--verbose", "--debug"])
    args.remove("--no-plots")
    assert main(args) == 0
    first = capfd.readouterr()

    # the same study asked for with other settings: refused, naming the storage
    assert main([*args, "--epochs", "2"]) == 2
    conflict = capfd.readouterr()
    assert f"--study-name secret in {masked} was created with other settings" in conflict.err
    # a wrong password: refused by the server, and not repeated either
    wrong = url.replace(quote(STUDY_PASSWORD, safe=""), "Wr0ng-Pw-481")
    assert main([*args[:args.index("--storage")], "--storage", wrong, *args[args.index("--storage") + 2:]]) == 2
    refused = capfd.readouterr()
    assert "cannot open the database" in refused.err and "password authentication failed" in refused.err
    assert "Wr0ng-Pw-481" not in refused.out + refused.err

    # what the study shows: the URL with its password masked
    report = json.loads((out / "report.json").read_text())
    assert report["counts"]["total"] == 2
    assert report["settings"]["storage"] == masked
    assert report["settings"]["dashboard"] == f"optuna-dashboard {masked}"
    assert f"storage `{masked}`" in (out / "report.md").read_text()
    assert f"in {masked}:" in first.err

    # every file the study wrote, every output, every attribute of the study: no password
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"report.json", "report.md", "best_student.pt", "history.png"} <= {p.name for p in written}
    assert {str(p.relative_to(tmp_path)): _leaks(p.read_bytes()) for p in written if _leaks(p.read_bytes())} == {}
    for stream in (first, conflict, refused):
        assert _leaks(stream.out) == [] and _leaks(stream.err) == []
    study = optuna.load_study(study_name="secret", storage=open_storage(url, tmp_path).storage)
    attrs = [study.user_attrs, study._storage.get_study_system_attrs(study._study_id)]
    attrs += [[t.user_attrs, t.system_attrs] for t in study.trials]
    assert _leaks(json.dumps(attrs, default=str)) == []
    assert "Trial 1 finished" in caplog.text and _leaks(caplog.text) == []  # the log records (--verbose)

    # the whole database, as pg_dump sees it
    bindir = postgres_bin()
    if (bindir / "pg_dump").is_file():
        u = make_url(url)
        dump = subprocess.run([str(bindir / "pg_dump"), "-h", u.host, "-p", str(u.port), "-U", u.username, u.database],
                              capture_output=True, env={**os.environ, "PGPASSWORD": STUDY_PASSWORD}, timeout=60)
        assert dump.returncode == 0, dump.stderr.decode(errors="replace")
        assert b"secret" in dump.stdout and b"stgkd" in dump.stdout  # the study and its settings are in it
        assert _leaks(dump.stdout) == []

