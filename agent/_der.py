"""Just enough DER to read an X.509 certificate's validity, subject and public key.

The agent reads its own certificate's expiry for every heartbeat and a probed
peer's expiry for every TLS probe.  ``cryptography`` would do it, but it costs
about 10 MB of resident memory in a process whose budget is 35 MB, so the long-
running agent reads these few fields itself (and, to check that a renewed
certificate certifies the key it asked for, the public key of its own CSR).
Anything unexpected raises :class:`ValueError`.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["CertInfo", "cert_info", "csr_public_key", "pem_to_der"]

_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----\s*(.+?)\s*-----END CERTIFICATE-----", re.DOTALL)
_CSR_RE = re.compile(
    r"-----BEGIN CERTIFICATE REQUEST-----\s*(.+?)\s*-----END CERTIFICATE REQUEST-----", re.DOTALL
)
_OID_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
}


@dataclass(frozen=True)
class CertInfo:
    """The fields of a certificate the agent needs.

    Attributes:
        not_before: start of validity, UNIX seconds.
        not_after: end of validity, UNIX seconds.
        subject: the subject as ``CN=name,O=org`` (RFC 4514 order reversed as
            OpenSSL prints it: most significant first).
        issuer: the issuer, written the same way (an SSL-inspecting proxy changes it).
    """

    not_before: float
    not_after: float
    subject: str
    issuer: str = ""
    public_key: bytes = b""
    """The DER SubjectPublicKeyInfo: the key the certificate certifies."""


def pem_to_der(pem: str) -> bytes:
    """Return the DER of the first certificate in ``pem``.

    Raises:
        ValueError: if there is no certificate block.
    """
    match = _PEM_RE.search(pem)
    if match is None:
        raise ValueError("no PEM certificate block")
    return base64.b64decode("".join(match.group(1).split()), validate=True)


def csr_public_key(pem: str) -> bytes:
    """The DER SubjectPublicKeyInfo of a PEM certificate signing request.

    Raises:
        ValueError: no CSR block, or not a CSR this parser understands.
    """
    match = _CSR_RE.search(pem)
    if match is None:
        raise ValueError("no PEM certificate request block")
    der = base64.b64decode("".join(match.group(1).split()), validate=True)
    try:
        _, req_s, _ = _tlv(der, 0)
        _, info_s, info_e = _tlv(der, req_s)
        # version, subject, subjectPKInfo, attributes: the key's TLV follows the subject.
        fields = _children(der, info_s, info_e)
        return der[fields[1][2] : fields[2][2]]
    except (IndexError, OverflowError) as exc:
        raise ValueError(f"malformed certificate request: {exc}") from None


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """Read one TLV at ``pos``: return (tag, start of value, end of value)."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4 or pos + count > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    end = pos + length
    if end > len(data):
        raise ValueError("truncated DER")
    return tag, pos, end


def _children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    out = []
    pos = start
    while pos < end:
        tag, vstart, vend = _tlv(data, pos)
        out.append((tag, vstart, vend))
        pos = vend
    return out


def _time(tag: int, raw: bytes) -> float:
    text = raw.decode("ascii")
    if tag == 0x17:  # UTCTime YYMMDDHHMMSSZ
        year = int(text[:2])
        text = f"{1900 + year if year >= 50 else 2000 + year}{text[2:]}"
    elif tag != 0x18:  # GeneralizedTime YYYYMMDDHHMMSSZ
        raise ValueError(f"unexpected time tag {tag:#x}")
    if not text.endswith("Z"):
        raise ValueError("certificate time is not UTC")
    moment = datetime.strptime(text[:-1], "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    return moment.timestamp()


def _oid(raw: bytes) -> str:
    first = raw[0]
    parts = [str(first // 40), str(first % 40)]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(str(value))
            value = 0
    return ".".join(parts)


def _name(data: bytes, start: int, end: int) -> str:
    parts = []
    for _set_tag, set_start, set_end in _children(data, start, end):
        for _seq_tag, seq_start, seq_end in _children(data, set_start, set_end):
            (_, oid_s, oid_e), (_, val_s, val_e) = _children(data, seq_start, seq_end)[:2]
            oid = _oid(data[oid_s:oid_e])
            value = data[val_s:val_e].decode("utf-8", errors="replace")
            parts.append(f"{_OID_NAMES.get(oid, oid)}={value}")
    return ",".join(reversed(parts))


def cert_info(der: bytes) -> CertInfo:
    """Read validity and subject from a DER certificate.

    Raises:
        ValueError: if ``der`` is not a certificate this parser understands.
    """
    try:
        return _cert_info(der)
    except (IndexError, OverflowError) as exc:  # malformed input: one error type for callers
        raise ValueError(f"malformed certificate: {exc}") from None


def _cert_info(der: bytes) -> CertInfo:
    _, cert_s, _ = _tlv(der, 0)
    _, tbs_s, tbs_e = _tlv(der, cert_s)
    fields = _children(der, tbs_s, tbs_e)
    if fields and fields[0][0] == 0xA0:  # explicit [0] version
        fields = fields[1:]
    if len(fields) < 5:
        raise ValueError("not an X.509 certificate")
    # serial, signature algorithm, issuer, validity, subject
    _, val_s, val_e = fields[3]
    (nb_tag, nb_s, nb_e), (na_tag, na_s, na_e) = _children(der, val_s, val_e)[:2]
    _, subj_s, subj_e = fields[4]
    _, iss_s, iss_e = fields[2]
    return CertInfo(
        issuer=_name(der, iss_s, iss_e),
        not_before=_time(nb_tag, der[nb_s:nb_e]),
        not_after=_time(na_tag, der[na_s:na_e]),
        subject=_name(der, subj_s, subj_e),
        # subjectPublicKeyInfo, the next field: its TLV begins where the subject ends.
        public_key=der[subj_e : fields[5][2]] if len(fields) > 5 else b"",
    )
