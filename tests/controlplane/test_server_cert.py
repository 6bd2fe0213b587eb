"""``fleet server --san`` / ``--tls-cert``: names checked, certificates checked at start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from controlplane.server_cert import check_san
from tests.agent.certs import ca_and_leaf
from tests.helpers.server import REPO


def server(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``fleet server ARGS`` that is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "fleet", "server", "--port", "0", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("cp.Example.com", "cp.example.com"),
        ("cp.example.com.", "cp.example.com"),
        ("*.fleet.example.com", "*.fleet.example.com"),
        ("10.0.0.5", "10.0.0.5"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("cp", "cp"),
    ],
)
def test_san_names_are_normalised(given, kept):
    assert check_san(given) == kept


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ("https://cp.example.com", "is a URL"),
        ("cp.example.com:8443", "a port does not belong"),
        ("0.0.0.0", "wildcard address"),
        ("bad_name.example", "not a valid DNS name"),
        ("-cp.example", "not a valid DNS name"),
        ("*.com", "not a valid DNS name"),
        ("", "empty name"),
    ],
)
def test_bad_san_names_say_what_is_allowed(given, says):
    with pytest.raises(ValueError, match=says):
        check_san(given)


def test_bad_san_flag_is_a_usage_error_naming_the_value(tmp_path):
    done = server("--data-dir", str(tmp_path / "d"), "--san", "https://cp.example.com")
    assert done.returncode == 2
    assert "--san" in done.stderr and "is a URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_tls_cert_that_does_not_match_its_key_or_comes_alone_is_refused(tmp_path):
    _, leaf = ca_and_leaf("Example Corp CA")
    _, other = ca_and_leaf("Example Corp CA")
    cert, _ = leaf.write(tmp_path, "leaf")
    _, wrong_key = other.write(tmp_path, "other")
    data = str(tmp_path / "d")

    mismatched = server("--data-dir", data, "--tls-cert", str(cert), "--tls-key", str(wrong_key))
    assert mismatched.returncode == 1
    assert f"--tls-key {wrong_key} does not match --tls-cert {cert}" in mismatched.stderr

    # A configuration error (exit 2), named by the settings before anything starts.
    alone = server("--data-dir", data, "--tls-cert", str(cert))
    assert alone.returncode == 2 and "go together" in alone.stderr

    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    bad = server("--data-dir", data, "--tls-cert", str(garbage), "--tls-key", str(wrong_key))
    assert bad.returncode == 1 and "holds no PEM certificate" in bad.stderr

    both = server(
        "--data-dir", data, "--tls-cert", str(cert), "--tls-key", str(wrong_key), "--san", "cp"
    )
    assert both.returncode == 1 and "drop --san, or drop --tls-cert" in both.stderr
    for done in (mismatched, alone, bad, both):
        assert "Traceback" not in done.stderr
