"""Effective configuration: TOML < FLEET_AGENT_* < flags, reported without secrets."""

from __future__ import annotations

import json

import pytest

from agent.config import AgentConfig, config_hash, load_config
from agent.errors import ConfigError


def test_flags_beat_environment_beat_file(tmp_path):
    file = tmp_path / "agent.toml"
    file.write_text(
        '[agent]\nmax_concurrency = 3\nmax_queue = 30\nlog_level = "debug"\n'
        'allow_ports = ["443"]\nsamples = false\n'
    )
    env = {
        "FLEET_AGENT_MAX_QUEUE": "40",
        "FLEET_AGENT_ALLOW_PORTS": "5432, 8000-8100",
        "FLEET_AGENT_LOG_LEVEL": "WARNING",
        "UNRELATED": "x",
    }
    cfg = load_config(file=file, env=env, flags={"log_level": "error", "allow_ports": None})
    assert cfg.max_concurrency == 3  # file only
    assert cfg.max_queue == 40  # env over file
    assert cfg.allow_ports == ("5432", "8000-8100")  # env list replaces file list
    assert cfg.log_level == "error"  # flag over env
    assert cfg.samples is False
    assert cfg.sources == (
        str(file),
        "FLEET_AGENT_MAX_QUEUE",
        "FLEET_AGENT_ALLOW_PORTS",
        "FLEET_AGENT_LOG_LEVEL",
        "--log-level",
    )


def test_defaults_without_any_source():
    cfg = load_config(file=None, env={}, flags={})
    assert cfg == AgentConfig()
    assert cfg.samples is True and cfg.allow_hosts == ()


@pytest.mark.parametrize(
    ("toml", "env", "message"),
    [
        ("max_concurency = 3\n", {}, "unknown setting 'max_concurency'"),
        ("samples = 'maybe'\n", {}, "true or false"),
        ("", {"FLEET_AGENT_MAX_QUEUE": "lots"}, "FLEET_AGENT_MAX_QUEUE"),
        ("allow_cidrs = ['10.0.0.0/33']\n", {}, "allow_cidrs"),
        ("allow_ports = ['80-79']\n", {}, "allow_ports"),
        ("server = 'http://plain'\n", {}, "https://"),
        ("max_concurrency = 0\n", {}, "max_concurrency"),
        ("this is = not toml", {}, "not valid TOML"),
    ],
)
def test_bad_settings_say_which_and_where(tmp_path, toml, env, message):
    file = tmp_path / "agent.toml"
    file.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(file=file, env=env, flags={})


def test_missing_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(file=tmp_path / "nope.toml", env={}, flags={})


def test_report_removes_secrets_and_hash_is_canonical_json():
    cfg = load_config(
        file=None,
        env={"FLEET_AGENT_PROXY": "http://ops:s3cr3t-pass@proxy.corp:3128"},
        flags={"allow_hosts": ["*.db.internal"]},
    )
    report = cfg.report()
    text = json.dumps(report)
    assert "s3cr3t-pass" not in text
    assert report["proxy"] == "http://ops:<redacted>@proxy.corp:3128"
    assert report["allow_hosts"] == ["*.db.internal"]
    assert "sources" not in report
    # The same settings from another source order hash the same; any change differs.
    again = load_config(
        file=None,
        env={},
        flags={"proxy": "http://ops:s3cr3t-pass@proxy.corp:3128", "allow_hosts": ["*.db.internal"]},
    )
    assert again.hash() == cfg.hash() == config_hash(dict(reversed(list(report.items()))))
    other = load_config(file=None, env={}, flags={"allow_hosts": ["*.db.internal"]})
    assert other.hash() != cfg.hash()
    assert cfg.hash().startswith("sha256:") and len(cfg.hash()) == 71
