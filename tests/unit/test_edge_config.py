"""The edge role in the node's settings: ``node.role = "edge"`` with its ``[edge]`` section."""

from __future__ import annotations

from pathlib import Path

import pytest

from millnet.config import DEFAULT_CONFIG, load_settings
from millnet.errors import ConfigError

EDGE = {"MILLNET_NODE__ROLE": "edge", "MILLNET_EDGE__HOST": "central.plant.local"}


def test_an_edge_node_from_the_environment() -> None:
    s = load_settings(None, environ={**EDGE, "MILLNET_EDGE__PORT": "8883",
                                     "MILLNET_EDGE__EDGE_NODE_ID": "Pumps.L1"})
    assert s.is_edge and s.runs_platform
    assert (s.edge.host, s.edge.port, s.edge.edge_node_id) == ("central.plant.local", 8883,
                                                               "Pumps.L1")
    # Not a Sparkplug host unless configured as one.
    assert not s.runs_mqtt_sources
    assert load_settings(None, environ={**EDGE, "MILLNET_MQTT__ENABLED": "true"}
                         ).runs_mqtt_sources
    assert load_settings(None, environ={}).runs_mqtt_sources  # other roles: as before


@pytest.mark.parametrize(("environ", "key"), [
    ({"MILLNET_NODE__ROLE": "edge"}, "edge.host"),
    ({**EDGE, "MILLNET_EDGE__PORT": "0"}, "edge.port"),
    ({**EDGE, "MILLNET_EDGE__WHEN_FULL": "drop_newest"}, "edge.when_full"),
    ({**EDGE, "MILLNET_EDGE__GROUP_ID": "a/b"}, "edge.group_id"),
    ({**EDGE, "MILLNET_IDENTIFIERS__ENABLED": "true", "MILLNET_IDENTIFIERS__PREFIX": "\"88.1\"",
      "MILLNET_IDENTIFIERS__ADMIN_SECRET_FILE": "/x"}, "identifiers.enabled"),
    ({**EDGE, "MILLNET_NODE__PLATFORM": "false"}, "node.platform"),
    ({"MILLNET_NODE__ROLE": "hub"}, "node.role"),
])
def test_a_bad_edge_configuration_names_the_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, environ=environ)
    assert err.value.key == key, err.value


def test_the_uplinks_name_is_taken_on_an_edge_node(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text('[node]\nrole = "edge"\n[edge]\nhost = "10.0.0.1"\n[[sources]]\n'
                    'kind = "modbus"\nname = "edge-uplink"\nhost = "10.0.0.2"\n'
                    '[[sources.registers]]\ndevice = "a/b/c/d"\npoint = "p"\n'
                    'table = "holding"\naddress = 0\ntype = "uint16"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, environ={})
    assert err.value.key == "sources[0].name"


def test_the_commented_edge_section_of_the_template_is_valid(tmp_path: Path) -> None:
    """``millnet init``'s [edge] example, uncommented, loads as written."""
    start = DEFAULT_CONFIG.index("# [edge]")
    lines = []
    for line in DEFAULT_CONFIG[start:].splitlines():
        if not line.startswith("# ") or line.startswith("# Field sources"):
            break
        lines.append(line[2:])
    path = tmp_path / "node.toml"
    path.write_text('[node]\nrole = "edge"\n' + "\n".join(lines) + "\n")
    s = load_settings(path, environ={})
    assert s.edge.host == "central.plant.local" and s.edge.when_full == "refuse_new"
    assert s.edge.password is not None and "..." not in repr(s.edge)
