"""The node's HTTP server answers requests its parser refuses in the API's JSON error shape
(schemathesis found uvicorn's text/plain "Invalid HTTP request received.", undocumented),
and serves well-formed requests on the same port as before."""

from __future__ import annotations

import json
import socket

import pytest
from fastapi import FastAPI

from tests.support.webserver import ThreadedServer


def _raw(url: str, request: bytes) -> tuple[str, dict[str, str], bytes]:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return lines[0], {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize("request_bytes", [
    b"GET /ok?x=\x01 HTTP/1.1\r\nHost: a\r\n\r\n",          # control character in the target
    b"GET /ok HTTP/1.1\r\nHost: a\r\nBad Header: 1\r\n\r\n",  # space in a header name
    b"POST /ok HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # chunk size
    b"NOT-HTTP\r\n\r\n",
])
def test_a_malformed_request_is_answered_in_json(request_bytes: bytes) -> None:
    app = FastAPI()
    with ThreadedServer(app) as server:
        status, headers, body = _raw(server.url, request_bytes)
    assert status == "HTTP/1.1 400 Bad Request"
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    answer = json.loads(body)
    assert answer["error"] == "bad_request" and "not valid HTTP" in answer["detail"]


def test_well_formed_requests_are_served() -> None:
    app = FastAPI()

    @app.get("/ok")
    def ok() -> dict[str, str]:
        return {"ok": "yes"}

    with ThreadedServer(app) as server:
        status, _, body = _raw(
            server.url, b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    assert status == "HTTP/1.1 200 OK"
    assert json.loads(body) == {"ok": "yes"}
