"""``millnet federation ...``: join a node to its parent and look at its links.

These act on the node's own database and key (``--config``), not over the API: a parent's
operator issues a one-time enrollment token for a child (``token``), the child's operator
redeems it (``enroll``), and either looks at the link (``status``); a parent tells its
children what to forward (``policy``). Exit status 1 when the
command failed (the reason is printed), 2 for a configuration error.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from sqlalchemy import Engine

from millnet.config import Settings, load_settings
from millnet.errors import ConfigError, MillnetError

app = typer.Typer(no_args_is_help=True,
                  help="The monitoring federation: enrollment tokens, enrollment, link status.")
console = Console(stderr=True)
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="node.toml")]


def _settings(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except ConfigError as exc:
        console.print(f"[red]configuration error[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from exc


@contextlib.contextmanager
def _database(settings: Settings) -> Iterator[Engine]:
    """The node's database, migrated to head, for one command; a refusal is printed and exits 1."""
    from millnet.db.engine import create_db_engine
    from millnet.db.migrate import upgrade

    engine = create_db_engine(settings.registry_url)
    try:
        upgrade(engine)
        yield engine
    except (MillnetError, ValueError) as exc:
        console.print(f"[red]error[/red] {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()


@app.command("token")
def token(
    node_id: Annotated[str, typer.Argument(help="the child's node name (its node.name)")],
    role: Annotated[str, typer.Option(help="enterprise or secondary")] = "enterprise",
    region: Annotated[str, typer.Option(help="GB/T 2260 code, e.g. 310000")] = "",
    sector: Annotated[str, typer.Option(help="GB/T 4754 code, e.g. C or C34")] = "",
    prefix: Annotated[str, typer.Option(help="its identifier prefix, e.g. 88.100.5")] = "",
    config: ConfigOpt = None,
) -> None:
    """Issue a one-time enrollment token for a child (printed once; only its hash is kept)."""
    from millnet.federation.enroll import issue_token

    settings = _settings(config)
    with _database(settings) as engine:
        print(issue_token(engine, node_id, role, region, sector, prefix,
                          settings.federation.token_ttl_s))


@app.command("enroll")
def enroll(
    parent: Annotated[str, typer.Option(help="the parent's API, http://host:port")],
    token: Annotated[str, typer.Option(help="the token its operator issued",
                                       envvar="MILLNET_ENROLL_TOKEN")],
    config: ConfigOpt = None,
) -> None:
    """Enroll this node with its parent (creates the node's key if it has none)."""
    from millnet.federation.enroll import enroll as redeem
    from millnet.federation.identity import NodeIdentity
    from millnet.files import private_dir
    from millnet.monitoring import key_path

    settings = _settings(config)
    private_dir(settings.node.data_dir)
    with _database(settings) as engine:
        identity = NodeIdentity.load_or_create(key_path(settings), settings.node.name)
        pin = redeem(parent, token, identity, engine)
    console.print(f"enrolled {identity.node_id} with {pin.node_id} ({parent})")


@app.command("policy")
def policy(
    min_severity: Annotated[str, typer.Option(
        help="children forward security events and incidents at or above this severity")]
        = "high",
    inventory: Annotated[bool, typer.Option(help="children forward inventories too")] = False,
    config: ConfigOpt = None,
) -> None:
    """Send a forwarding policy down to every enrolled child (applied at its next exchange)."""
    from millnet.db.engine import writer
    from millnet.federation.forwarding import parse_policy
    from millnet.federation.identity import NodeIdentity
    from millnet.federation.links import FederationLinks
    from millnet.federation.schema import federation_children
    from millnet.monitoring import key_path

    settings = _settings(config)
    with _database(settings) as engine:
        body = parse_policy({"forward_min_severity": min_severity,
                             "forward_inventory": inventory}).to_body()
        identity = NodeIdentity.load_or_create(key_path(settings), settings.node.name)
        links = FederationLinks(settings.federation, engine, identity, settings.node.role)
        with engine.connect() as conn:
            children = [r.node_id for r in conn.execute(federation_children.select())]
        boxes = [links.outbox_down(child) for child in children]  # each opens its own state
        with writer(engine).begin() as conn:  # every child or none
            for box in boxes:
                box.enqueue("policy", body, conn)
    console.print(f"policy {body} queued for {len(children)} children")


@app.command("status")
def status(config: ConfigOpt = None,
           as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """This node's links: its upward outbox and, on a parent, its children and their health."""
    from millnet.federation.children import Children
    from millnet.federation.identity import NodeIdentity
    from millnet.federation.links import FederationLinks
    from millnet.monitoring import key_path

    settings = _settings(config)
    with _database(settings) as engine:
        identity = NodeIdentity.load_or_create(key_path(settings), settings.node.name)
        links = FederationLinks(settings.federation, engine, identity, settings.node.role)
        out: dict[str, Any] = links.status()
        out["children"] = [_child(c) for c in Children(engine, settings.federation).all()]
    if as_json:
        print(json.dumps(out, default=str))
        return
    print(f"{out['node_id']} ({out['role']})")
    if "up" in out:
        up = out["up"]
        print(f"  upward: {up['depth']} waiting ({up['bytes']} bytes), {up['refused']} refused")
    for c in out["children"]:
        print(f"  child {c['node_id']:<24} {c['role']:<10} {c['region']} {c['sector']:<5} "
              f"{c['health']:<8} last seen {c['last_seen'] or 'never'}")


def _child(c: Any) -> dict[str, Any]:
    return {"node_id": c.node_id, "role": c.role, "region": c.region, "sector": c.sector,
            "prefix": c.prefix, "health": c.status, "last_seen": c.last_seen,
            "applied_up": c.applied_up, "rejected": c.rejected, "down_depth": c.down_depth,
            "up_depth": c.up_depth, "up_refused": c.up_refused}
