"""Three `millnet id serve` processes form a hierarchy (national 88 -> secondary 88.100 ->
enterprise 88.100.5); `millnet id resolve` gets enterprise handles from any of them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from millnet.connectivity.broker import free_port, wait_for_port


def _millnet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "millnet", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def _serve(tmp_path: Path, name: str, prefix: str, port: int, *extra: str,
           ) -> subprocess.Popen[str]:
    secret = tmp_path / f"{name}.secret"
    secret.write_text(f"s3cret-{name}-key\n")
    return subprocess.Popen(
        [sys.executable, "-m", "millnet", "id", "serve", "--prefix", prefix, "--data",
         str(tmp_path / name), "--admin-secret-file", str(secret), "--udp-port", str(port),
         "--tcp-port", str(port), "--http-port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_three_nodes_resolve_through_the_hierarchy(tmp_path: Path) -> None:
    national, secondary, enterprise, dead = (free_port() for _ in range(4))
    servers = [
        _serve(tmp_path, "national", "88", national, "--role", "national", "--recursive",
               "--delegate", f"88.100=127.0.0.1:{secondary}"),
        _serve(tmp_path, "secondary", "88.100", secondary, "--role", "secondary",
               "--parent", f"127.0.0.1:{national}", "--recursive",
               # a replica that is down, listed first: resolvers fail over to the next one
               "--delegate", f"88.100.5=127.0.0.1:{dead},127.0.0.1:{enterprise}"),
        _serve(tmp_path, "enterprise", "88.100.5", enterprise, "--role", "enterprise",
               "--parent", f"127.0.0.1:{secondary}"),
    ]
    try:
        for port in (national, secondary, enterprise):
            wait_for_port(port, 30)
        # Recursive (REC is set by `resolve`) from the national and the secondary node.
        for port in (national, secondary):
            found = _millnet("id", "resolve", "88.100.5/ADMIN", "--server", f"127.0.0.1:{port}")
            assert found.returncode == 0, found.stdout + found.stderr
            assert "HS_ADMIN" in found.stdout
        # The enterprise node does not recurse: it refers 88.200 up to its parent...
        up = _millnet("id", "resolve", "88.200/X", "--server", f"127.0.0.1:{enterprise}")
        assert up.returncode == 3, up.stdout + up.stderr
        # ...and a client that follows referrals gets the national node's answer.
        followed = _millnet("id", "resolve", "88.200/X", "--server",
                            f"127.0.0.1:{enterprise}", "--follow")
        assert followed.returncode == 2, followed.stdout + followed.stderr
        assert "100" in followed.stdout
        down = _millnet("id", "resolve", "88.100.5/ADMIN", "--server", f"127.0.0.1:{national}",
                        "--follow", "--no-tcp")
        assert down.returncode == 0, down.stdout + down.stderr
        # The delegation record is on the parent, with the replicas' HS_SITE.
        record = _millnet("id", "resolve", "0.NA/88.100.5", "--server",
                          f"127.0.0.1:{secondary}")
        assert record.returncode == 0 and "HS_SITE" in record.stdout
    finally:
        outs = []
        for server in servers:
            server.send_signal(signal.SIGTERM)
        for server in servers:
            outs.append(server.communicate(timeout=30)[0])
    for server, out in zip(servers, outs, strict=True):
        assert server.returncode == 0, out


def test_a_replicated_prefix_keeps_resolving_when_one_replica_stops(tmp_path: Path) -> None:
    national, secondary, primary, mirror, primary_http = (free_port() for _ in range(5))
    servers = {
        "national": _serve(tmp_path, "national", "88", national, "--role", "national",
                           "--recursive", "--delegate", f"88.100=127.0.0.1:{secondary}"),
        "secondary": _serve(tmp_path, "secondary", "88.100", secondary, "--role", "secondary",
                            "--parent", f"127.0.0.1:{national}", "--recursive", "--delegate",
                            f"88.100.5=127.0.0.1:{primary},127.0.0.1:{mirror}"),
    }
    # The two enterprise replicas share the prefix admin's secret.
    (tmp_path / "mirror.secret").write_text("s3cret-primary-key\n")
    servers["primary"] = subprocess.Popen(
        [sys.executable, "-m", "millnet", "id", "serve", "--prefix", "88.100.5", "--data",
         str(tmp_path / "primary"), "--admin-secret-file", str(tmp_path / "mirror.secret"),
         "--udp-port", str(primary), "--tcp-port", str(primary), "--http-port",
         str(primary_http), "--parent", f"127.0.0.1:{secondary}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    servers["mirror"] = subprocess.Popen(
        [sys.executable, "-m", "millnet", "id", "serve", "--prefix", "88.100.5", "--data",
         str(tmp_path / "mirror"), "--admin-secret-file", str(tmp_path / "mirror.secret"),
         "--udp-port", str(mirror), "--tcp-port", str(mirror), "--http-port", "0",
         "--parent", f"127.0.0.1:{secondary}", "--mirror-of", f"http://127.0.0.1:{primary_http}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for port in (national, secondary, primary, mirror, primary_http):
            wait_for_port(port, 30)
        made = _millnet("id", "register", "88.100.5/PUMP-9", "--auth", "300:88.100.5/ADMIN",
                        "--secret-file", str(tmp_path / "mirror.secret"), "--server",
                        f"127.0.0.1:{primary}", "--value", "URL=https://plant.example/9")
        assert made.returncode == 0, made.stdout + made.stderr
        deadline = time.monotonic() + 20
        while True:  # replicated to the mirror
            copy = _millnet("id", "resolve", "88.100.5/PUMP-9", "--server", f"127.0.0.1:{mirror}")
            if copy.returncode == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert copy.returncode == 0, copy.stdout + copy.stderr
        servers["primary"].send_signal(signal.SIGTERM)
        servers["primary"].communicate(timeout=30)
        # The national node follows the delegation; the first replica is down, the mirror
        # answers.
        found = _millnet("id", "resolve", "88.100.5/PUMP-9", "--server", f"127.0.0.1:{national}")
        assert found.returncode == 0, found.stdout + found.stderr
        assert "plant.example/9" in found.stdout
    finally:
        for server in servers.values():
            if server.poll() is None:
                server.send_signal(signal.SIGTERM)
        for server in servers.values():
            if server.returncode is None:
                server.communicate(timeout=30)
