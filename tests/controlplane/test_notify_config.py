"""Receivers in the server config: clear refusals, and URLs shown without secrets."""

from __future__ import annotations

import pytest

from controlplane.config_load import ServerConfigError, load_settings
from controlplane.notify.receivers import shown_url


def _load(tmp_path, text: str):
    config = tmp_path / "server.toml"
    config.write_text(text)
    return load_settings(config, {})


def _refused(tmp_path, text: str) -> str:
    with pytest.raises(ServerConfigError) as err:
        _load(tmp_path, text)
    return str(err.value)


def test_a_webhook_needs_a_private_secret_file(tmp_path):
    err = _refused(
        tmp_path, '[[receivers]]\nname = "h"\nkind = "webhook"\nurl = "http://127.0.0.1:1"\n'
    )
    assert "needs secret_file" in err and "chmod 600" in err
    err = _refused(
        tmp_path,
        f'[[receivers]]\nname = "h"\nkind = "webhook"\nurl = "http://127.0.0.1:1"\n'
        f'secret_file = "{tmp_path / "missing"}"\n',
    )
    assert "does not exist" in err
    short = tmp_path / "short"
    short.write_text("abc")
    short.chmod(0o600)
    err = _refused(
        tmp_path,
        f'[[receivers]]\nname = "h"\nkind = "webhook"\nurl = "http://127.0.0.1:1"\n'
        f'secret_file = "{short}"\n',
    )
    assert "shorter than 16 bytes" in err


def test_other_refusals(tmp_path):
    err = _refused(
        tmp_path,
        '[[receivers]]\nname = "s"\nkind = "slack"\nurl = "http://127.0.0.1:1"\n'
        'secret_file = "/x"\n',
    )
    assert "secret_file is for webhooks only" in err
    err = _refused(
        tmp_path, '[[receivers]]\nname = "s"\nkind = "pager"\nurl = "http://127.0.0.1:1"\n'
    )
    assert "receivers[0].kind" in err and "alertmanager" in err
    err = _refused(tmp_path, '[[receivers]]\nname = "s"\nkind = "slack"\nurl = "ftp://u:pw@h/x"\n')
    assert "must be an http:// or https:// URL" in err and "pw" not in err
    twice = '[[receivers]]\nname = "a"\nkind = "alertmanager"\nurl = "http://127.0.0.1:9093"\n'
    err = _refused(tmp_path, twice + twice)
    assert "a repeat" in err


def test_shown_url_strips_secrets():
    assert shown_url("https://u:p@am.example:9093/x?token=1#f") == "https://am.example:9093/x"
    assert (
        shown_url("https://hooks.slack.com/services/T/B/X", "slack") == "https://hooks.slack.com/…"
    )
    assert shown_url("http://[::1]:8080/a", "webhook") == "http://[::1]:8080/a"
