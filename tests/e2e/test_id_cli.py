"""`millnet id serve` on first start creates its prefix records; `millnet id resolve` reads them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from millnet.connectivity.broker import free_port, wait_for_port
from tests.integration.registry_fixtures import _postgres_database
from tests.servers import Postgres


def _millnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "millnet", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def _serve(tmp_path: Path) -> tuple[Path, int, int, subprocess.Popen[str]]:
    """A `millnet id serve` for 88.100.5: its secret file, UDP/TCP port, HTTP port, process."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret-admin-key\n")
    port, http_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "millnet", "id", "serve", "--prefix", "88.100.5", "--data",
         str(tmp_path / "data"), "--admin-secret-file", str(secret), "--udp-port", str(port),
         "--tcp-port", str(port), "--http-port", str(http_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return secret, port, http_port, server


def test_serve_bootstraps_the_prefix_and_resolve_reads_it(tmp_path: Path) -> None:
    _, port, http_port, server = _serve(tmp_path)
    try:
        wait_for_port(port, 30)
        record = _millnet("id", "resolve", "0.NA/88.100.5", "--server", f"127.0.0.1:{port}")
        assert record.returncode == 0, record.stdout + record.stderr
        assert "HS_ADMIN" in record.stdout
        assert "HS_SITE" in record.stdout
        admin = _millnet("id", "resolve", "88.100.5/ADMIN", "--server", f"127.0.0.1:{port}",
                         "--tcp")
        assert admin.returncode == 0
        assert "HS_SECKEY" not in admin.stdout  # the secret is admin-read only
        assert "s3cret" not in admin.stdout
        missing = _millnet("id", "resolve", "88.100.5/NOPE", "--server", f"127.0.0.1:{port}")
        assert missing.returncode == 2
        assert "100" in missing.stdout
        # The same records over the Handle.Net-compatible HTTP JSON API.
        wait_for_port(http_port, 30)
        rest = httpx.get(f"http://127.0.0.1:{http_port}/api/handles/0.NA/88.100.5")
        assert rest.status_code == 200, rest.text
        assert {v["type"] for v in rest.json()["values"]} >= {"HS_ADMIN", "HS_SITE"}
        assert httpx.get(f"http://127.0.0.1:{http_port}/api/handles/88.100.5/NOPE"
                         ).json()["responseCode"] == 100
    finally:
        server.send_signal(signal.SIGTERM)
        out = server.communicate(timeout=30)[0]
    assert server.returncode == 0, out
    assert "s3cret" not in out  # secrets are never logged


def test_register_list_delete_against_a_node(tmp_path: Path) -> None:
    secret, port, http_port, server = _serve(tmp_path)
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-key\n")
    auth = ["--auth", "300:88.100.5/ADMIN", "--secret-file", str(secret),
            "--server", f"127.0.0.1:{port}"]
    try:
        wait_for_port(port, 30)
        made = _millnet("id", "register", "88.100.5/PUMP-1", *auth,
                        "--value", "URL=https://plant.example/pumps/1", "--template", "product",
                        "--data", '{"model": "P-200", "manufacturer": "Acme", '
                                  '"serialNumber": "SN1", "productionDate": "2026-11-02"}')
        assert made.returncode == 0, made.stdout + made.stderr
        found = _millnet("id", "resolve", "88.100.5/PUMP-1", "--server", f"127.0.0.1:{port}")
        assert found.returncode == 0 and "MN_DATA" in found.stdout and "P-200" in found.stdout
        invalid = _millnet("id", "register", "88.100.5/PUMP-2", *auth, "--template", "product",
                           "--data", '{"model": "P-200"}')
        assert invalid.returncode == 2 and "202" in invalid.stdout
        assert "manufacturer" in invalid.stdout
        minted = _millnet("id", "register", "88.100.5", "--mint", *auth,
                          "--value", "URL=https://plant.example/minted")
        assert minted.returncode == 0 and "registered 88.100.5/" in minted.stdout
        denied = _millnet("id", "register", "88.100.5/X", "--auth", "300:88.100.5/ADMIN",
                          "--secret-file", str(wrong), "--server", f"127.0.0.1:{port}",
                          "--value", "URL=https://evil.example/")
        assert denied.returncode == 2 and "403" in denied.stdout, denied.stdout

        batch = tmp_path / "batch.jsonl"
        batch.write_text("\n".join(json.dumps({
            "handle": f"88.100.5/LOT-{i}", "template": "batch",
            "data": {"batchNo": f"L{i}", "product": "P-200", "quantity": 5,
                     "producedFrom": "2026-11-23T08:00:00Z"}}) for i in range(25)))
        wait_for_port(http_port, 30)
        loaded = _millnet("id", "register-batch", str(batch), "--auth", "300:88.100.5/ADMIN",
                          "--secret-file", str(secret), "--http", f"http://127.0.0.1:{http_port}")
        assert loaded.returncode == 0 and "registered 25" in loaded.stdout, loaded.stdout

        listed = _millnet("id", "list", "88.100.5", *auth)
        assert listed.returncode == 0, listed.stdout
        names = set(listed.stdout.split())
        assert {"88.100.5/PUMP-1", "88.100.5/LOT-0", "88.100.5/LOT-24"} <= names
        gone = _millnet("id", "delete", "88.100.5/PUMP-1", *auth)
        assert gone.returncode == 0
        again = _millnet("id", "resolve", "88.100.5/PUMP-1", "--server", f"127.0.0.1:{port}")
        assert again.returncode == 2
        missing = _millnet("id", "delete", "88.100.5/PUMP-1", *auth)
        assert missing.returncode == 2 and "100" in missing.stdout
    finally:
        server.send_signal(signal.SIGTERM)
        out = server.communicate(timeout=30)[0]
    assert server.returncode == 0, out
    assert "s3cret" not in out


def test_serve_on_postgresql_from_the_environment(tmp_path: Path,
                                                  postgres_server: Postgres) -> None:
    """``MILLNET_ID_DATABASE`` points the node at PostgreSQL; its password is never printed."""
    import os

    for url in _postgres_database(postgres_server):
        # The session's cluster trusts local connections, so any password works: it is only
        # here to show that it is never printed.
        with_password = url.replace("postgres@", "postgres:pg-pass-8812@", 1)
        secret = tmp_path / "secret"
        secret.write_text("s3cret-admin-key\n")
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "millnet", "id", "serve", "--prefix", "88.100.5", "--data",
             str(tmp_path / "data"), "--admin-secret-file", str(secret), "--udp-port",
             str(port), "--tcp-port", str(port), "--http-port", str(free_port())],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "MILLNET_ID_DATABASE": with_password})
        try:
            wait_for_port(port, 30)
            record = _millnet("id", "resolve", "0.NA/88.100.5", "--server",
                              f"127.0.0.1:{port}")
            assert record.returncode == 0, record.stdout + record.stderr
            assert "HS_ADMIN" in record.stdout
        finally:
            server.send_signal(signal.SIGTERM)
            out = server.communicate(timeout=30)[0]
        assert server.returncode == 0, out
        assert "identifier database postgresql+psycopg://postgres:***@" in out
        assert "pg-pass-8812" not in out
        assert not (tmp_path / "data" / "identifiers.sqlite").exists()


def test_ports_in_use_are_named_not_a_traceback(tmp_path: Path) -> None:
    import socket

    secret = tmp_path / "secret"
    secret.write_text("s3cret-admin-key\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        port = free_port()
        out = _millnet("id", "serve", "--prefix", "88.100.5", "--data", str(tmp_path / "d"),
                       "--admin-secret-file", str(secret), "--udp-port", str(port),
                       "--tcp-port", str(port), "--http-port", str(busy))
    assert out.returncode == 1
    assert f"http_port: cannot listen on 127.0.0.1:{busy}" in " ".join(out.stdout.split())
    assert "Traceback" not in out.stdout + out.stderr


def test_ordinary_mistakes_are_named_not_tracebacks(tmp_path: Path) -> None:
    """Found by review: a bad --server, a missing @file and a non-HTTP port printed
    tracebacks."""
    secret = tmp_path / "secret"
    secret.write_text("s3cret-admin-key\n")
    for server in ("badaddr", "127.0.0.1:notaport", "127.0.0.1:70000"):
        out = _millnet("id", "resolve", "88.100.5/X", "--server", server)
        assert out.returncode == 1 and "is not host:port" in out.stdout, out.stdout
    missing = _millnet("id", "register", "88.100.5/X", "--auth", "300:88.100.5/ADMIN",
                       "--secret-file", str(secret), "--template", "product",
                       "--data", f"@{tmp_path / 'nope.json'}")
    assert missing.returncode == 2 and "cannot read" in " ".join(missing.stderr.split())
    for out in (*(_millnet("id", "resolve", "88.100.5/X", "--server", s)
                  for s in ("badaddr",)), missing):
        assert "Traceback" not in out.stdout + out.stderr
