"""Guessing HTTP Basic secrets stays slow whatever the client claims to be (issue 9, finding
6): ``X-Forwarded-For`` is read only from trusted proxies, and failures are counted per
principal as well as per host. Real nodes over HTTP; the property test runs the requests
through uvicorn's own application stack as the node configures it."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millnet.config import load_settings
from millnet.connectivity.broker import free_port
from millnet.errors import ConfigError
from millnet.identifiers import IdentifierService, IdentifierStore, bootstrap_prefix
from millnet.identifiers.http.basic_auth import PrincipalThrottle
from millnet.identifiers.http.rest import create_handle_app
from millnet.identifiers.wire.auth import AuthThrottle, TooManyFailures
from millnet.idnode import IdServerOptions, identifier_node
from millnet.protocols.handle import ServerRecord, SiteInfo, address_octets
from millnet.serving import embedded_server

SECRET = "enterprise-admin-secret"
ADMIN = "300:88.100.5/ADMIN"
LIMIT = 20  # the default of both throttles
COUNT = "/api/handles?prefix=88.100.5&pageSize=0"  # needs credentials (LIST_HANDLES)


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{quote(user)}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def _opts(tmp_path: Path, **more: Any) -> IdServerOptions:
    secret = tmp_path / "admin.secret"
    secret.write_text(SECRET + "\n")
    return IdServerOptions("88.100.5", tmp_path / "node", secret, "127.0.0.1", free_port(),
                           free_port(), 0, **more)


def _checked(response: httpx.Response) -> bool:
    """The secret was compared (a wrong one), not refused unchecked by a throttle."""
    return response.status_code == 401 and "not verified" in response.json()["message"]


def _refused(response: httpx.Response) -> bool:
    return response.status_code == 401 and "too many" in response.json()["message"]


def test_forwarded_for_is_ignored_without_a_trusted_proxy(tmp_path: Path) -> None:
    """Found by review: uvicorn trusted X-Forwarded-For from 127.0.0.1 by default, so each
    forged address got 20 fresh guesses."""

    async def scenario() -> None:
        async with identifier_node(_opts(tmp_path)) as node, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{node.http_port}") as http:
            answers = [await http.get(COUNT, headers={
                **_basic(ADMIN, f"guess-{i}"), "X-Forwarded-For": f"198.51.100.{i}"})
                for i in range(LIMIT + 5)]
            assert all(_checked(a) for a in answers[:LIMIT])
            assert all(_refused(a) for a in answers[LIMIT:])
            right = await http.get(COUNT, headers={**_basic(ADMIN, SECRET),
                                                   "X-Forwarded-For": "198.51.100.200"})
            assert _refused(right)  # the one real client, 127.0.0.1, is locked out

    asyncio.run(scenario())


def test_a_trusted_proxy_names_clients_and_guesses_per_principal_stay_bounded(
        tmp_path: Path) -> None:
    opts = _opts(tmp_path, trusted_proxies=("127.0.0.0/8",))

    async def scenario() -> None:
        async with identifier_node(opts) as node, httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{node.http_port}") as http:
            def via(client: str, password: str) -> dict[str, str]:
                return {**_basic(ADMIN, password), "X-Forwarded-For": f"{client}, 127.0.0.1"}

            admin = await http.get(COUNT, headers=via("192.0.2.10", SECRET))
            assert admin.status_code == 200  # the admin's host is now known
            spread = [await http.get(COUNT, headers=via(f"203.0.113.{i}", "guess"))
                      for i in range(LIMIT + 5)]  # a new client address for every guess
            assert sum(_checked(a) for a in spread) == LIMIT
            assert all(_refused(a) for a in spread[LIMIT:])
            assert _refused(await http.get(COUNT, headers=via("192.0.2.99", SECRET)))
            # The principal's lock spares the host that proved the secret before.
            assert (await http.get(COUNT, headers=via("192.0.2.10", SECRET))).status_code == 200

    asyncio.run(scenario())


def test_trusted_proxies_are_addresses_or_networks(tmp_path: Path) -> None:
    for bad in ("*", "proxy.example", "10.0.0.0/33"):
        with pytest.raises(ConfigError) as caught:
            _opts(tmp_path, trusted_proxies=(bad,)).check()
        assert caught.value.key == "api.trusted_proxies"
        with pytest.raises(ConfigError):
            load_settings(None, environ={}, overrides={"api": {"trusted_proxies": [bad]}})
    loaded = load_settings(None, environ={"MILLNET_API__TRUSTED_PROXIES": '["10.0.0.0/8"]'})
    assert [str(n) for n in loaded.api.trusted_proxies] == ["10.0.0.0/8"]
    assert load_settings(None, environ={}).api.trusted_proxies == ()
    assert embedded_server(object()).config.proxy_headers is False


def test_a_flood_of_other_names_does_not_unlock_a_principal() -> None:
    now = [0.0]
    throttle = PrincipalThrottle(limit=2, window=60, max_principals=3, clock=lambda: now[0])
    for _ in range(2):
        throttle.attempt("300:88.100.5/ADMIN", "192.0.2.1")
    for i in range(50):  # other names, each failing once
        throttle.attempt(f"300:88.100.5/X{i}", f"192.0.2.{i}")
    with pytest.raises(TooManyFailures):
        throttle.attempt("300:88.100.5/ADMIN", "198.51.100.7")
    now[0] = 61.0  # failures age out
    assert throttle.attempt("300:88.100.5/ADMIN", "198.51.100.7") is not None


# ------------------------------------------------------------------------- property test

PRINCIPALS = ["300:88.100.5/ADMIN", "301:88.100.5/ADMIN", "300:88.100.6/ADMIN"]
PROXIES = ("10.0.0.0/8", "2001:db8:ffff::/48")
_address = st.ip_addresses().map(str)
_source = st.one_of(_address, st.sampled_from(["10.0.0.1", "10.9.9.9", "2001:db8:ffff::1",
                                               "127.0.0.1"]))
_forwarded = st.none() | st.lists(st.one_of(_address, st.sampled_from(
    ["10.0.0.7", "unknown", "", "[2001:db8::1]:443", "192.0.2.1:80"])), max_size=4).map(
    ", ".join)
_attempt = st.tuples(_source, _forwarded, st.sampled_from([*PRINCIPALS, PRINCIPALS[0]] * 2))


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[bool, tuple[Any, Any]]]:
    """(the app, the ASGI stack uvicorn serves it with), without and with trusted proxies."""
    site = SiteInfo(servers=(ServerRecord(1, address_octets("127.0.0.1")),))
    url = f"sqlite:///{tmp_path_factory.mktemp('ids') / 'ids.sqlite'}"
    with IdentifierStore.open(url) as store:
        for prefix in ("88.100.5", "88.100.6"):
            bootstrap_prefix(store, prefix, SECRET, site)
        service = IdentifierService(store, ["88.100.5", "88.100.6"])
        stacks = {}
        for trusted in (False, True):
            app = create_handle_app(store, service)
            config = embedded_server(app, proxies=PROXIES if trusted else ()).config
            config.load()
            stacks[trusted] = (app, config.loaded_app)
        yield stacks


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(attempts=st.lists(_attempt, min_size=LIMIT + 1, max_size=3 * LIMIT),
       trusted=st.booleans())
def test_checked_guesses_per_principal_stay_bounded(
        apps: dict[bool, tuple[Any, Any]], attempts: list[tuple[str, str | None, str]],
        trusted: bool) -> None:
    """Whatever source addresses and X-Forwarded-For headers the guesses come with, no
    principal has more than LIMIT wrong secrets checked within the window."""
    app, stack = apps[trusted]
    app.state.throttle = AuthThrottle()  # a fresh window for each example
    app.state.principal_throttle = PrincipalThrottle()

    async def guess() -> Counter[str]:
        checked: Counter[str] = Counter()
        for source, forwarded, principal in attempts:
            transport = httpx.ASGITransport(stack, client=(source, 40000))
            async with httpx.AsyncClient(transport=transport, base_url="http://node") as http:
                headers = _basic(principal, "wrong")
                if forwarded is not None:
                    headers["X-Forwarded-For"] = forwarded
                answer = await http.get(COUNT, headers=headers)
            assert answer.status_code == 401
            checked[principal] += _checked(answer)
        return checked

    checked = asyncio.run(guess())
    assert all(n <= LIMIT for n in checked.values()), checked
