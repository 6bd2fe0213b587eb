"""``fleet agent enroll``: the agent's name follows the one name rule, checked first."""

from __future__ import annotations

import pytest

from agent.enroll import agent_name
from agent.errors import ConfigError
from fleet.units import NAME_RULE
from tests.agent.agents import enroll


def test_a_65_character_name_is_a_usage_error_not_a_traceback(control_plane, tmp_path):
    state_dir = tmp_path / "agent"
    result = enroll(control_plane, state_dir, name="a" * 65)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert NAME_RULE in result.stderr and "--name" in result.stderr
    assert not (state_dir / "key.pem").exists()
    with control_plane.api() as api:
        assert api.get("/v1/agents").json() == []


def test_a_64_character_name_enrolls(control_plane, tmp_path):
    result = enroll(control_plane, tmp_path / "agent", name="a" * 64)
    assert result.returncode == 0, result.stderr
    with control_plane.api() as api:
        assert [a["name"] for a in api.get("/v1/agents").json()] == ["a" * 64]


@pytest.mark.parametrize("host", ["my host", "h" * 65, "host;x", "-lead"])
def test_an_invalid_host_name_asks_for_name(host):
    with pytest.raises(ConfigError, match="pass --name NAME") as info:
        agent_name(None, host_name=host)
    assert NAME_RULE in str(info.value)


def test_a_valid_host_name_or_given_name_is_kept():
    assert agent_name(None, host_name="web-01.example.com") == "web-01.example.com"
    assert agent_name("db-1", host_name="not valid") == "db-1"
