"""`millnet node` configured from the environment alone runs the platform and the identifier
service in one process; a configuration that cannot run fails at start with one line naming
the key (and the port)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from millnet.connectivity.broker import free_port, wait_for_port

PREFIX = "88.100.5"


def _env(tmp_path: Path, **more: str) -> dict[str, str]:
    """A node's whole configuration as environment variables (no file)."""
    secret = tmp_path / "admin.secret"
    secret.write_text("s3cret-admin-key\n")
    native = free_port()
    keys = {
        "NODE__DATA_DIR": str(tmp_path / "data"), "NODE__NAME": "plant-1",
        "MQTT__ENABLED": "false", "API__PORT": str(free_port()),
        "IDENTIFIERS__ENABLED": "true", "IDENTIFIERS__PREFIX": PREFIX,
        "IDENTIFIERS__UDP_PORT": str(native), "IDENTIFIERS__TCP_PORT": str(native),
        "IDENTIFIERS__HTTP_PORT": str(free_port()),
        "IDENTIFIERS__ADMIN_SECRET_FILE": str(secret),
        "IDENTIFIERS__DATABASE": f"sqlite:///{tmp_path / 'ids.sqlite'}",
        "IDENTIFIERS__PARENT": f"127.0.0.1:{free_port()}",
        **more,
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MILLNET_")}
    return clean | {f"MILLNET_{key}": value for key, value in keys.items()}


def _millnet(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "millnet", *args], capture_output=True,
                          text=True, timeout=60, check=False, env=env)


@pytest.fixture
def node(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = _env(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "millnet", "node"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for key in ("API__PORT", "IDENTIFIERS__TCP_PORT", "IDENTIFIERS__HTTP_PORT"):
            wait_for_port(int(env[f"MILLNET_{key}"]), 30)
        yield env
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert "s3cret" not in out


def test_one_process_serves_platform_and_identifiers_from_the_environment(
        node: dict[str, str], tmp_path: Path) -> None:
    native = node["MILLNET_IDENTIFIERS__UDP_PORT"]
    # The identifier service: native UDP (the CLI tries UDP first) and the REST API.
    record = _millnet(node, "id", "resolve", f"0.NA/{PREFIX}", "--server", f"127.0.0.1:{native}")
    assert record.returncode == 0, record.stdout + record.stderr
    assert "HS_SITE" in record.stdout and "HS_ADMIN" in record.stdout
    http = node["MILLNET_IDENTIFIERS__HTTP_PORT"]
    rest = httpx.get(f"http://127.0.0.1:{http}/api/handles/{PREFIX}/ADMIN")
    assert rest.status_code == 200 and rest.json()["responseCode"] == 1
    # The referral to the configured parent.
    up = _millnet(node, "id", "resolve", "88.200/X", "--server", f"127.0.0.1:{native}")
    assert up.returncode == 3, up.stdout
    # The identifier database is where MILLNET_IDENTIFIERS__DATABASE says.
    assert (tmp_path / "ids.sqlite").exists()
    assert not (tmp_path / "data" / "identifiers.sqlite").exists()
    # The platform API of the same process, with a token made by a command that reads the
    # same settings (the registry in MILLNET_NODE__DATA_DIR).
    token = _millnet(node, "token", "create", "--name", "e2e")
    assert token.returncode == 0, token.stdout + token.stderr
    api = f"http://127.0.0.1:{node['MILLNET_API__PORT']}"
    tenants = httpx.get(f"{api}/api/v1/tenants",
                        headers={"Authorization": f"Bearer {token.stdout.strip()}"})
    assert tenants.status_code == 200, tenants.text
    assert [t["name"] for t in tenants.json()] == ["default"]
    assert httpx.get(f"{api}/api/v1/tenants").status_code == 401


def _fails(env: dict[str, str], key: str, *words: str) -> str:
    out = _millnet(env, "node")
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if key in line]
    assert len(lines) == 1 and all(w in lines[0] for w in words), text
    return lines[0]


def test_conflicting_ports_are_named(tmp_path: Path) -> None:
    env = _env(tmp_path)
    env["MILLNET_IDENTIFIERS__HTTP_PORT"] = env["MILLNET_API__PORT"]
    _fails(env, "identifiers.http_port", env["MILLNET_API__PORT"], "api.port")


def test_a_missing_secret_file_is_named(tmp_path: Path) -> None:
    env = _env(tmp_path, IDENTIFIERS__ADMIN_SECRET_FILE=str(tmp_path / "nope.secret"))
    _fails(env, "identifiers.admin_secret_file", "nope.secret")
    assert not (tmp_path / "data").exists()  # nothing was opened


@pytest.mark.parametrize("key", ["API__PORT", "IDENTIFIERS__UDP_PORT", "IDENTIFIERS__TCP_PORT",
                                 "IDENTIFIERS__HTTP_PORT"])
def test_a_busy_port_is_one_line_naming_key_and_port(tmp_path: Path, key: str) -> None:
    env = _env(tmp_path)
    udp = key == "IDENTIFIERS__UDP_PORT"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        if not udp:
            s.listen()
        busy = str(s.getsockname()[1])
        env[f"MILLNET_{key}"] = busy
        if key == "IDENTIFIERS__TCP_PORT":  # UDP stays free on its own port
            env["MILLNET_IDENTIFIERS__UDP_PORT"] = str(free_port())
        if key == "IDENTIFIERS__UDP_PORT":
            env["MILLNET_IDENTIFIERS__TCP_PORT"] = str(free_port())
        dotted = key.lower().replace("__", ".")
        line = _fails(env, dotted, busy, "in use")
    assert f"{dotted}: cannot listen on 127.0.0.1:{busy}" in line


def test_id_serve_is_the_same_settings_with_flags_as_overrides(tmp_path: Path) -> None:
    env = _env(tmp_path)
    http = free_port()  # the flag wins over MILLNET_IDENTIFIERS__HTTP_PORT
    proc = subprocess.Popen([sys.executable, "-m", "millnet", "id", "serve", "--http-port",
                             str(http)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(int(env["MILLNET_IDENTIFIERS__TCP_PORT"]), 30)
        wait_for_port(http, 30)
        rest = httpx.get(f"http://127.0.0.1:{http}/api/handles/0.NA/{PREFIX}")
        assert rest.status_code == 200, rest.text
        with pytest.raises(httpx.ConnectError):  # only the identifier service runs
            httpx.get(f"http://127.0.0.1:{env['MILLNET_API__PORT']}/metrics")
    finally:
        proc.send_signal(signal.SIGTERM)
        out = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, out
    assert f"http/{http}" in out
    assert not (tmp_path / "data" / "registry.sqlite").exists()
