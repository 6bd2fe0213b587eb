"""docs/oncall.md is the runbook every alert links to: it has a section for every
alert kind the control plane raises and for every anchor the example rules name."""

from __future__ import annotations

import re

from controlplane.alerts import AGENT_KINDS
from tests.helpers.server import REPO

OTHER_KINDS = {"unroutable", "pool_below_min", "connection_at_risk"}
"""Alerts raised for connections and pools, besides the agents' own."""


def _anchors() -> set[str]:
    text = (REPO / "docs" / "oncall.md").read_text()
    headings = re.findall(r"^#{2,4} (.+)$", text, flags=re.M)
    # GitHub's anchors: lower case, spaces to '-', punctuation other than '-' and '_' dropped.
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_kind_has_a_runbook_section():
    missing = sorted((set(AGENT_KINDS) | OTHER_KINDS) - _anchors())
    assert missing == [], f"docs/oncall.md has no section for {missing}"


def test_the_kinds_raised_in_code_are_the_ones_listed_here():
    # A kind added in the code without a runbook entry is caught here.
    source = "\n".join(
        p.read_text() for p in (REPO / "controlplane").rglob("*.py") if "test" not in p.name
    )
    raised = set(re.findall(r'(?:_finding|Finding)\(\s*"([a-z_]+)"', source))
    assert raised, "no alert kinds found in the code: the pattern is out of date"
    assert raised <= set(AGENT_KINDS) | OTHER_KINDS, raised - (set(AGENT_KINDS) | OTHER_KINDS)


def test_every_runbook_link_of_the_example_rules_resolves():
    rules = (REPO / "deploy" / "prometheus" / "fleet-rules.yml").read_text()
    alerts = re.findall(r"^\s*- alert: ", rules, flags=re.M)
    links = re.findall(r"^\s*runbook_url: \"?([^\"\s]+)", rules, flags=re.M)
    assert alerts and len(links) == len(alerts), "every rule links to its runbook section"
    anchors = _anchors()
    for link in links:
        page, _, anchor = link.partition("#")
        assert page.endswith("docs/oncall.md"), link
        assert anchor in anchors, f"{link}: no such section in docs/oncall.md"
