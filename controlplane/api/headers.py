"""Response headers built from data, safely.

Starlette has no helper for ``Content-Disposition``; :func:`attachment` follows
RFC 6266 (and RFC 8187 for ``filename*``): an ASCII fallback that no client can
misread, then the exact name percent-encoded in UTF-8.
"""

from __future__ import annotations

import re
from urllib.parse import quote

__all__ = ["attachment"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` value that offers ``filename`` for download.

    Whatever ``filename`` holds (quotes, ``;``, CR/LF, ``../``, non-ASCII), the
    header is one line of ASCII: ``filename`` gets a fallback where each character
    outside ``A-Za-z0-9._@-`` is ``_`` (leading dots dropped, so no hidden or ``..``
    name), and ``filename*`` carries the name itself in UTF-8, percent-encoded, with
    control characters and path separators made ``_``.
    """
    fallback = _UNSAFE.sub("_", filename).lstrip(".") or "download"
    kept = "".join(c if c.isprintable() and c not in "/\\" else "_" for c in filename)
    encoded = quote(kept.lstrip("."), safe="")
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"
