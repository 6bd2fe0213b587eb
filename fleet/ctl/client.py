"""A small synchronous client of the control plane's REST API, for the admin CLI.

httpx is imported when the first request is made, so building the ``fleet``
parser stays cheap.  Errors become :mod:`fleet.ctl.errors` with the server's own
words (``{"detail": ...}``) and the exit code that matches the status.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from .errors import AuthError, ConflictError, CtlError, NotFoundError, UsageError
from .profile import Target

if TYPE_CHECKING:
    import httpx

__all__ = ["UPLOAD_PIECE", "ApiClient", "path"]

UPLOAD_PIECE = 256 << 10
"""Bytes of a file read and sent at a time by :meth:`ApiClient.upload`."""


def path(template: str, *parts: str) -> str:
    """``template`` with each ``{}`` replaced by a part, percent-encoded (no ``/``)."""
    return template.format(*(quote(p, safe="") for p in parts))


class ApiClient:
    """Calls ``target.server`` with its bearer token; trusts ``target.ca_file`` if set.

    Use as a context manager; :meth:`call` returns the decoded JSON answer.
    """

    def __init__(self, target: Target, timeout: float = 30.0) -> None:
        self.target = target
        self._timeout = timeout
        self._client: httpx.Client | None = None

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._client is not None:
            self._client.close()

    def _http(self) -> httpx.Client:
        if self._client is None:
            import httpx

            verify: ssl.SSLContext | bool = True
            ca = self.target.ca_file
            if ca is not None:
                try:
                    verify = ssl.create_default_context(cafile=str(ca))
                except (OSError, ssl.SSLError) as exc:
                    where = self.target.origin.get("ca", "")
                    raise UsageError(f"cannot load the CA file {ca} ({where}): {exc}") from None
            self._client = httpx.Client(
                base_url=self.target.server,
                verify=verify,
                timeout=self._timeout,
                headers={"Authorization": f"Bearer {self.target.token}"},
            )
        return self._client

    def call(
        self,
        method: str,
        url: str,
        body: Any = None,
        params: Mapping[str, str | int | float] | None = None,
    ) -> Any:
        """``method url`` with a JSON ``body``; the JSON answer (None when empty).

        Raises:
            CtlError: or a subclass chosen by the status; the message is the server's.
        """
        return _decoded(self._send(method, url, json=body, params=params))

    def upload(
        self,
        method: str,
        url: str,
        file: Path,
        params: Mapping[str, str | int | float] | None = None,
    ) -> Any:
        """``method url`` with the bytes of ``file`` as the body, streamed in pieces
        (its size declared, so a server with a cap refuses it before reading any).

        Raises:
            UsageError: ``file`` cannot be read.
            CtlError: as :meth:`call`.
        """
        try:
            size = file.stat().st_size
            handle = file.open("rb")
        except OSError as exc:
            raise UsageError(f"cannot read {file}: {exc.strerror}") from None

        def pieces() -> Iterator[bytes]:
            while piece := handle.read(UPLOAD_PIECE):
                yield piece

        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        with handle:
            response = self._send(
                method, url, content=pieces(), params=params, headers=headers, sending=file
            )
        return _decoded(response)

    def _send(
        self, method: str, url: str, sending: Path | None = None, **kwargs: Any
    ) -> httpx.Response:
        import httpx

        client = self._http()
        try:
            response = client.request(method, url, **kwargs)
        except httpx.ConnectError as exc:
            raise CtlError(self._unreachable(exc)) from None
        except httpx.TimeoutException:
            raise CtlError(
                f"{self.target.server} did not answer {method} {url} within "
                f"{self._timeout:.0f} s; is the control plane overloaded?"
            ) from None
        except httpx.HTTPError as exc:
            if sending is not None and isinstance(exc, httpx.TransportError):
                raise CtlError(
                    f"the control plane cut the connection while {sending} was sent ({exc}); "
                    "check the file's size against the server's release_max_bytes, and retry"
                ) from None
            raise CtlError(f"{method} {self.target.server}{url} failed: {exc}") from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _unreachable(self, exc: Exception) -> str:
        text = str(exc)
        server, where = self.target.server, self.target.origin.get("server", "?")
        if "CERTIFICATE_VERIFY_FAILED" in text and self.target.origin.get("ca") == "--ca-pin":
            return (
                f"{server} serves the CA the pin names, but its TLS certificate is not "
                f"signed by that CA: {text}. If it presents a certificate from your PKI "
                "(fleet server --tls-cert), log in with --ca-file (that PKI's CA bundle) or "
                "without a CA (the system trust store)"
            )
        if "CERTIFICATE_VERIFY_FAILED" in text:
            ca = self.target.ca_file
            trust = f"the CA in {ca}" if ca else "the system's trust store"
            return (
                f"{server} (from {where}) presented a certificate not trusted by {trust}: "
                f"{text}. Pass the control plane's CA with --ca-file (DATA_DIR/ca.pem) "
                "or log in again with it"
            )
        return (
            f"cannot reach {server} (from {where}): {text}. Is 'fleet server' running "
            "there? Check --server, FLEET_SERVER or the profile ('fleet login')"
        )


def _decoded(response: httpx.Response) -> Any:
    """The JSON answer (its text if not JSON; None when empty)."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return response.text


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text.strip() or response.reason_phrase
    if isinstance(detail, list):  # a validation error: say which field and why
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = ".".join(str(p) for p in item.get("loc", [])[1:]) or "body"
                parts.append(f"{loc}: {item.get('msg', item)}")
        return "; ".join(parts) or str(detail)
    return str(detail)


def _error(response: httpx.Response) -> CtlError:
    status, detail = response.status_code, _detail(response)
    message = f"refused ({status}): {detail}"
    if (status, detail) in ((404, "Not Found"), (405, "Method Not Allowed")):
        # FastAPI's own answer for a route it does not have, not one of ours.
        request = response.request
        return CtlError(
            f"the control plane has no {request.method} {request.url.path}: it is older "
            "than this CLI; upgrade it (compare 'fleet --version' on both hosts)"
        )
    if status in (401, 403):
        if status == 401:
            message += ". Log in again ('fleet login') or check --token-file / FLEET_TOKEN_FILE"
        return AuthError(message)
    if status == 404:
        return NotFoundError(f"not found: {detail}")
    if status == 409:
        return ConflictError(f"conflict: {detail}")
    return CtlError(message)
