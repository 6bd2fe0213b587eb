"""The probe modal and the probe result."""

from __future__ import annotations

import contextlib
import time
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from fleet.protocol import ProbeResult

from .. import format as fmt
from ..client import ProbeRequest

__all__ = ["ProbeModal", "ProbeResultModal", "describe_probe"]


def describe_probe(agent_name: str, host: str, port: str, tls: bool) -> str:
    """What the probe will do, in one sentence."""
    target = f"{host or '<host>'}:{port or '<port>'}"
    how = "a TLS handshake with" if tls else "a TCP connection to"
    return (
        f"Will ask agent {agent_name} to open {how} {target} from inside its network "
        "(its pool policy and local allow-list must permit it)."
    )


class _TlsBox(Checkbox, inherit_bindings=False):
    """The TLS checkbox: Space toggles it; Enter submits the form, as in every
    other field (a checkbox's Enter toggling it surprised a user who meant "go")."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("space", "toggle_button", show=False)]


class ProbeModal(ModalScreen[ProbeRequest | None]):
    """Ask for host, port and TLS; dismiss with the request, or None on cancel."""

    DEFAULT_CSS = """
    ProbeModal { align: center middle; }
    ProbeModal > Vertical {
        width: 70; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
        border: thick $accent; background: $surface; overflow-y: auto;
    }
    ProbeModal .title { text-style: bold; margin-bottom: 1; }
    ProbeModal Input { margin-bottom: 1; }
    ProbeModal Checkbox { border: none; padding: 0; margin-bottom: 1; }
    ProbeModal #probe-does { color: $text-muted; margin-bottom: 1; }
    ProbeModal #probe-error { color: $error; }
    ProbeModal Horizontal { height: auto; align-horizontal: right; }
    ProbeModal Button { margin-left: 2; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        # Priority: Textual hands a key to the focused widget's own queue, so a
        # Tab left to bubble up from the host field moved focus only after the
        # keys typed behind it had gone to the host too ("127.0.0.142409").  As
        # a priority binding it moves focus as it arrives, in order.
        Binding("tab", "app.focus_next", show=False, priority=True),
        Binding("shift+tab", "app.focus_previous", show=False, priority=True),
        Binding("enter", "submit", show=False),
    ]
    """Escape cancels; Enter submits (from the fields and the TLS box alike)."""

    def __init__(self, agent_name: str, host: str = "", port: int | None = None) -> None:
        super().__init__()
        self.agent_name = agent_name
        self._host = host
        self._port = "" if port is None else str(port)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Probe from {self.agent_name}", classes="title")
            yield Label("host")
            yield Input(self._host, placeholder="e.g. db.internal", id="probe-host", compact=True)
            yield Label("port")
            yield Input(
                self._port, placeholder="e.g. 5432", type="integer", id="probe-port", compact=True
            )
            yield _TlsBox("TLS handshake: off", id="probe-tls")
            yield Static(id="probe-does")
            yield Static(id="probe-error")
            with Horizontal():
                yield Button("Cancel", id="probe-cancel", compact=True)
                yield Button("Probe", variant="primary", id="probe-go", compact=True)

    def on_mount(self) -> None:
        self._describe()

    @on(Input.Changed)
    @on(Checkbox.Changed)
    def _describe(self) -> None:
        host = self.query_one("#probe-host", Input).value.strip()
        port = self.query_one("#probe-port", Input).value.strip()
        box = self.query_one("#probe-tls", Checkbox)
        tls = box.value
        # The box's mark differs from its unticked look only by colour; say it in words.
        box.label = f"TLS handshake: {'on' if tls else 'off'}"
        text = describe_probe(self.agent_name, host, port, tls)
        self.query_one("#probe-does", Static).update(text)

    def _request(self) -> ProbeRequest | None:
        host = self.query_one("#probe-host", Input).value.strip()
        port_text = self.query_one("#probe-port", Input).value.strip()
        error = self.query_one("#probe-error", Static)
        port = 0
        with contextlib.suppress(ValueError):
            port = int(port_text)
        if not host:
            error.update("Give a host to probe.")
            return None
        if not 1 <= port <= 65535:
            error.update("Give a port between 1 and 65535.")
            return None
        return ProbeRequest(host=host, port=port, tls=self.query_one("#probe-tls", Checkbox).value)

    @on(Input.Submitted)
    @on(Button.Pressed, "#probe-go")
    def action_submit(self) -> None:
        request = self._request()
        if request is not None:
            self.dismiss(request)

    @on(Button.Pressed, "#probe-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def result_lines(agent_name: str, result: ProbeResult, now: float | None = None) -> list[str]:
    """The probe result as lines of text, readable without colour."""
    now = time.time() if now is None else now
    dns = _ms(result.dns_ms)
    if result.dns_ms is None and result.ok:
        dns = "- (an address: no lookup)"
    verdict = "OK" if result.ok else f"FAILED ({result.failure or 'error'})"
    how = "TLS" if result.tls else "TCP"
    lines = [
        f"{how} {result.host}:{result.port} from {agent_name}: {verdict}",
        "",
        f"resolved   {', '.join(result.resolved) or '-'}",
        f"dns        {dns}",
        f"connect    {_ms(result.connect_ms)}",
    ]
    if result.tls:
        lines.append(f"tls        {_ms(result.tls_ms)}")
    if result.peer_cert_subject:
        lines.append(f"peer cert  {result.peer_cert_subject}")
    if result.peer_cert_not_after is not None:
        expiry = fmt.cert_expiry(result.peer_cert_not_after, now)
        mark = "  ⚠ renew soon" if fmt.cert_warning(result.peer_cert_not_after, now) else ""
        lines.append(f"valid to   {fmt.utc_minute(result.peer_cert_not_after)} ({expiry}){mark}")
    if result.error:
        lines += ["", f"error: {result.error}"]
    return lines


class ProbeResultModal(ModalScreen[None]):
    """A probe's outcome: verdict, failure class, timings."""

    DEFAULT_CSS = """
    ProbeResultModal { align: center middle; }
    ProbeResultModal > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
        border: thick $success; background: $surface;
    }
    ProbeResultModal.-failed > Vertical { border: thick $error; }
    ProbeResultModal #probe-result { margin-bottom: 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,enter,q", "dismiss_result", "Close"),
    ]
    """Escape, Enter or q close the result."""

    def __init__(self, agent_name: str, result: ProbeResult) -> None:
        super().__init__(classes="" if result.ok else "-failed")
        self.agent_name = agent_name
        self.result = result

    def compose(self) -> ComposeResult:
        with Vertical():
            text = "\n".join(result_lines(self.agent_name, self.result))
            yield Static(Text(text), id="probe-result")  # Text: error text is not markup
            yield Button("Close", id="probe-close", compact=True)

    @on(Button.Pressed, "#probe-close")
    def action_dismiss_result(self) -> None:
        self.dismiss(None)
