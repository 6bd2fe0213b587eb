"""Trust a control plane by its CA pin: fetch ``GET /v1/ca`` unverified, check the pin.

The same first step as ``fleet agent enroll --ca-pin``: nothing secret is sent
before the CA is known to be the one the pin names; after it, the connection is
verified with that CA.  Used by ``fleet login --ca-pin`` and ``fleet tui --ca-pin``.
"""

from __future__ import annotations

from fleet.pins import pins_equal, spki_pin

from .errors import CtlError, PinMismatchError

__all__ = ["fetch_pinned_ca"]


def fetch_pinned_ca(server_url: str, pin: str, timeout: float = 10.0) -> str:
    """The PEM CA served at ``server_url/v1/ca``, if its pin is ``pin``.

    The request carries no token.

    Raises:
        PinMismatchError: the CA has another pin.
        CtlError: the CA cannot be fetched or read.
    """
    import httpx

    url = server_url.rstrip("/") + "/v1/ca"
    try:
        resp = httpx.get(url, verify=False, timeout=timeout)  # noqa: S501 - the pin decides
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise CtlError(
            f"could not fetch the CA from {url}: {exc}; check the URL and that "
            "'fleet server' runs there"
        ) from None
    pem = resp.text
    try:
        got = spki_pin(pem)
    except ValueError:
        raise CtlError(
            f"{url} answered without a readable CA certificate; is {server_url} a fleet "
            "control plane?"
        ) from None
    if not pins_equal(got, pin):
        raise PinMismatchError(
            f"the server's CA has pin {got}, not {pin.strip()}: the token was NOT sent. "
            "Check the pin ('fleet server' prints it; DATA_DIR/ca.pin), or you may be "
            "talking to the wrong server (an SSL-inspecting proxy presents its own CA)"
        )
    return pem
