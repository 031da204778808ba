"""`millnet id serve` on first start creates its prefix records; `millnet id resolve` reads them."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import httpx

from millnet.connectivity.broker import free_port, wait_for_port


def _millnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "millnet", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_serve_bootstraps_the_prefix_and_resolve_reads_it(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("s3cret-admin-key\n")
    port, http_port = free_port(), free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "millnet", "id", "serve", "--prefix", "88.100.5", "--data",
         str(tmp_path / "data"), "--admin-secret-file", str(secret), "--udp-port", str(port),
         "--tcp-port", str(port), "--http-port", str(http_port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
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
