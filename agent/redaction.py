"""Secret redaction for agent log text.

The agent returns its recent logs to the control plane on request, and they are
redacted *on the agent* before they leave the host.  :func:`redact` is the one
entry point: multi-line text in, the same number of lines out, each line with
its secrets masked and everything else (hosts, ports, timings, ids, UUIDs,
hashes, error text, user names) left exactly as it was.

What is masked, and how:

* Values found by their shape alone (this project's ``flte_``/``flta_`` tokens,
  GitHub, GitLab, Slack, Stripe and Google keys, JWTs, AWS access key ids, and
  a 40-character AWS secret key on a line that carries a key id or alone on a
  line -- 40 hex digits, a SHA-1, are kept) are replaced whole by
  ``[REDACTED:<kind>]``.
* Values found by their context keep the key, scheme and user; only the secret
  becomes ``[REDACTED]``: URL/DSN passwords (any ``scheme://user:pass@``, JDBC
  Oracle ``user/pass@``), ``key=value``, ``key:value``, ``"key": "value"``,
  YAML, ``export KEY=value``, ``--key value``, ``<key>value</key>``,
  ``curl -u user:pass``, ``mysql -pPASS`` (also ``-p'...'``, on a line naming a
  MySQL or MariaDB client), ``Cookie``/``Set-Cookie`` values, Slack webhook
  paths, ``Authorization``/``Proxy-Authorization`` (the scheme
  is kept), API-key headers (``X-Api-Key`` ...), Azure ``AccountKey=`` /
  ``SharedAccessKey=`` / SAS ``sig=``.  A key is secret if its name contains
  password, passwd, pwd, passphrase, secret, token, api key, private key,
  account key or shared access key -- unless it names metadata about the
  secret (``token_ttl``, ``token_type``, ``password_min_length``,
  ``token_file``, ``secret_name``, ...).  An ``auth`` key (Docker's
  ``config.json``, ``basic_auth``) is secret only when its value looks like a
  credential (``auth: ldap`` is kept).  Placeholders (``<nil>``, ``null``,
  ``***``, ``${VAR}``, ``true``) are kept: they are diagnostic, not secret.
* PEM private key blocks keep their ``BEGIN``/``END`` lines; every non-blank
  line inside becomes ``[REDACTED:private-key]`` (indentation kept).  A block
  with no ``END`` is masked to the end of the text: a truncated key is still a
  key.  A key on one line (escaped newlines in JSON) has its body masked.  A
  line that is nothing but a long mixed-case base64 run (a PEM body line seen
  without its block) becomes ``[REDACTED:base64-blob]``.

A secret-ish word followed by prose is not a secret: ``token expired for agent
ag_1`` and ``password authentication failed for user "app"`` are unchanged.
``key=value``, ``key:value``, quoted values and YAML ``key: value`` at the start
of a line are always masked.  A bare word after ``key: `` in running text (or
after ``--key ``) is masked unless it reads as prose: a status word
(``refresh token: expired``) or the start of a sentence (``invalid token:
signature mismatch``); a value that looks like a secret (letters and digits,
symbols, mixed case, or long) is masked either way.

The function is idempotent (``redact(redact(x)) == redact(x)``) and uses only
precompiled :mod:`re` patterns, written so that none backtracks over a line
(possessive runs, each candidate tried once from the start of its run, a key
found before its value is read), so its time is linear in the length of the text.
A line longer than :data:`MAX_LINE_CHARS` is cut after its last separator before
the limit (the word across the cut is dropped whole, never shown in part) and
ends with `` [cut: N more chars]``.  :class:`Redactor` is the streaming form, for
callers that see one line at a time but want PEM blocks tracked across lines.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Callable
from typing import Final

__all__ = ["MAX_LINE_CHARS", "REDACTED", "Redactor", "redact"]

REDACTED: Final = "[REDACTED]"
"""The marker that replaces a secret found by its context."""

_PRIVATE_KEY_MARKER: Final = "[REDACTED:private-key]"

MAX_LINE_CHARS: Final = 16 * 1024
"""Longer lines are cut (at a blank, so no word is split) and end with a marker."""

_CUT_MARKER_RE: Final = re.compile(r" \[cut: [0-9]{1,12} more chars\]\Z")
# A line that already ends with a cut marker was cut by an earlier redaction: its
# body is not cut again unless it is far longer than a cut line can redact to.
_CUT_BODY_MAX: Final = 8 * MAX_LINE_CHARS
_CUT_MIN_WORD_CUT: Final = MAX_LINE_CHARS // 2
_CUT_AFTER: Final = " \t,;&"


def _cut_marker(dropped: int) -> str:
    return f" [cut: {dropped} more chars]"


def _split_cut(line: str) -> tuple[str, str]:
    """A line's body to redact and the cut marker to append after it (or "")."""
    marker = ""
    length = len(line)
    at = line.rfind(" [cut: ")
    if at >= 0 and _CUT_MARKER_RE.match(line, at):
        line, marker = line[:at], line[at:]
        if len(line) <= _CUT_BODY_MAX:
            return line, marker
    if len(line) <= MAX_LINE_CHARS:
        return line, marker
    # Cut after a separator: a secret split in two would no longer be recognised
    # by its shape, so the word that straddles the cut is dropped whole (and if
    # the line's second half is one word, the whole line is).
    head = line[:MAX_LINE_CHARS]
    if line[MAX_LINE_CHARS] not in _CUT_AFTER:
        at = max(head.rfind(c) for c in _CUT_AFTER)
        head = head[: at + 1] if at >= _CUT_MIN_WORD_CUT else ""
    return head, _cut_marker(length - len(head))


# A marker already in the text, as one atomic unit.
_MARK = r"\[REDACTED(?::[a-z0-9-]{1,40}+)?\]"
_NOT_MARKED = r"(?!\[REDACTED)"


def _kind(kind: str) -> str:
    return f"[REDACTED:{kind}]"


# --------------------------------------------------------------------------
# Tokens recognised by their shape alone.

_SHAPE_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    (
        re.compile(r"(?<![A-Za-z0-9_])flte_[A-Za-z0-9]{40}(?![A-Za-z0-9])"),
        _kind("enrollment-token"),
    ),
    (re.compile(r"(?<![A-Za-z0-9_])flta_[A-Za-z0-9]{40}(?![A-Za-z0-9])"), _kind("api-token")),
    (
        re.compile(
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{30,255}|github_pat_[A-Za-z0-9_]{22,255})"
            r"(?![A-Za-z0-9_])"
        ),
        _kind("github-token"),
    ),
    (re.compile(r"(?<![A-Za-z0-9_-])glpat-[A-Za-z0-9_-]{20,}"), _kind("gitlab-token")),
    (re.compile(r"(?<![A-Za-z0-9_-])(?:xox[abposr]|xapp)-[A-Za-z0-9-]{10,}"), _kind("slack-token")),
    (
        re.compile(
            r"(?<![A-Za-z0-9_])(?:(?:sk|rk|pk)_(?:live|test)|whsec)_[A-Za-z0-9]{10,}(?![A-Za-z0-9])"
        ),
        _kind("stripe-key"),
    ),
    (
        re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}(?![A-Za-z0-9_-])"),
        _kind("google-api-key"),
    ),
    (
        re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}+\.[A-Za-z0-9_-]{2,}+\.[A-Za-z0-9_-]*+"),
        _kind("jwt"),
    ),
)

_AWS_KEY_ID_RE: Final = re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])")
# On a line that carries an AWS key id, a bare 40-char base64-ish word is its secret key
# (the CSV and "id secret" forms); elsewhere a bare 40-char word is left alone.
_AWS_SECRET_NEAR_ID_RE: Final = re.compile(
    r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
# A line that is nothing but 40 base64-ish characters is an AWS secret key seen alone
# (mixed case and a digit or '/', '+'; 40 hex digits are a SHA-1 and stay).
_AWS_SECRET_LINE_RE: Final = re.compile(
    r"^(?P<pre>[ \t]*+)(?P<val>[A-Za-z0-9/+]{40})(?P<post>[ \t]*+)$"
)

# --------------------------------------------------------------------------
# Secrets recognised by their context.

# scheme://user:password@host -- any scheme (postgres, mysql, mongodb+srv, amqps,
# rediss, http(s), ...).  The password may itself contain '@'; the last one wins.
_URL_PASSWORD_RE: Final = re.compile(
    r"(?P<pre>(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]*+://[^:/?#@\s]*+:)"
    r"(?P<pw>[^\s/?#]*)@"
)
# jdbc:oracle:thin:user/password@host (the password stops at a '/': each URL's
# search then ends before the next one's, instead of running to the end of the line)
_ORACLE_RE: Final = re.compile(r"(?i)(?P<pre>jdbc:oracle:\w++:[^/\s@:]++/)(?P<pw>[^@\s/]++)@")

_AUTH_HEADER_RE: Final = re.compile(
    r"(?i)(?P<pre>(?<![\w-])(?:proxy-)?authorization\\?[\"']?[ \t]*+[:=][ \t]*+"
    r"(?!\[REDACTED)\[?\\?[\"']?)"
    r"(?:(?P<scheme>bearer|basic|token|bot|negotiate|ntlm|apikey|api-key|sso-key|dpop)[ \t]++)?"
    r"(?P<cred>" + _MARK + r"|[^\s\"',;\\\[\]]++)"
)
_AUTH_DIGEST_RE: Final = re.compile(
    r"(?i)(?P<pre>(?<![\w-])(?:proxy-)?authorization\\?[\"']?[ \t]*+[:=][ \t]*+\\?[\"']?"
    r"(?:digest|hawk|mac)[ \t]++)" + _NOT_MARKED + r"(?P<cred>\S.*)"
)
_API_KEY_HEADER_RE: Final = re.compile(
    r"(?i)(?P<pre>(?<![\w-])(?:x-api-key|api-key|x-auth-token|x-access-token|x-amz-security-token"
    r"|x-vault-token|private-token|x-goog-api-key|ocp-apim-subscription-key|x-functions-key"
    r"|x-fleet-token)\\?[\"']?[ \t]*+:[ \t]*+(?!\[REDACTED)\[?\\?[\"']?)"
    + _NOT_MARKED
    + r"(?P<cred>[^\s\"',;\\\[\]]++)"
)
_BEARER_RE: Final = re.compile(
    r"(?i)(?P<pre>(?<![\w-])bearer[ \t]++)"
    + _NOT_MARKED
    + r"(?P<cred>[A-Za-z0-9._~+/-]{16,}+=*+)(?![\w.~+/=:-])"
)
_SAS_SIG_RE: Final = re.compile(r"(?P<pre>[?&]sig=)" + _NOT_MARKED + r"(?P<cred>[^&\s\"'#]+)")

# Key names that hold secrets (searched in the lower-cased key).
_SECRET_WORD_RE: Final = re.compile(
    r"passw(?:or)?d|passphrase|pwd|secret|token|api[-_.]?key|private[-_.]?key"
    r"|account[-_.]?key|shared[-_.]?access[-_.]?(?:key|signature)"
    r"|(?:signing|encryption|master|hmac)[-_.]?key|(?:^|_)pass$|(?:^|_)auth$"
)
# ``auth`` (Docker's config.json, ``basic_auth``): masked only when the value
# looks like a credential, since ``auth: ldap`` names a method.
_AUTH_KEY_RE: Final = re.compile(r"(?:^|_)auth$")
# ... unless the key names something about the secret rather than the secret.
_NON_SECRET_SUFFIX_RE: Final = re.compile(
    r"_(?:ttl|type|expiry|expires|expires_at|expires_in|expiration|expire_time|expired|length|len"
    r"|min_length|max_length|count|file|path|dir|url|uri|endpoint|name|policy|age|lifetime|source"
    r"|header|prefix|format|location|env|field|mode|enabled|required|set|present|valid|status"
    r"|version|rotated|rotated_at|created|created_at|updated_at|issued_at|used_at|error|reason)$"
)
_CAMEL_RE: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

# Values that are not secrets and say something useful: empty markers, booleans,
# already-masked values and references to where the secret comes from.
_PLACEHOLDER_RE: Final = re.compile(
    r"(?i)(?:true|false|yes|no|null|none|nil|<nil>|undefined|unset|empty|n/a|\*+|x{3,}|~"
    r"|<[a-z0-9_ -]*>|\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*|\{\{.*\}\}|%\([^)]*\)s)"
)

# Possessive: a key never gives characters back (nothing after it can start with one).
_KEY = r"[A-Za-z_-][\w.-]*+"
_VALUE_CHARS = r"[^\s\"',;&)}\]]"
_FIRST_VALUE_CHAR = r"[^\s\"',;&)}\]\[]"

# key: value at the start of a line (YAML, possibly a list item): the value runs
# to the end of the line, minus a trailing comment.
# The value is found by _YAML_TRAIL_RE rather than a lazy ``.*?`` in this pattern,
# which retried the trailing-blank test at every character (quadratic on blanks).
_YAML_RE: Final = re.compile(
    r"^(?P<pre>[ \t]*+(?:-[ \t]++)?(?P<key>"
    + _KEY
    + r")[ \t]*+:[ \t]++)"
    + _NOT_MARKED
    + r"(?=[^\s\"'|>#&*!{\[])"
)
# Where the value ends: the first run of blanks that starts a comment or ends the
# line (a run is only tried from its first blank, so each is scanned once).
_YAML_TRAIL_RE: Final = re.compile(r"(?<![ \t])[ \t]++(?:#|$)|$")

# key=value, key: value, "key": "value", 'key' => 'value', \"key\":\"value\", ...
# The key and its separator are found first and the value is matched only after a
# secret key: a declined key costs its own length, not the rest of the line.
_KV_KEY_RE: Final = re.compile(
    r"(?P<kq>\\?[\"'])?(?<![\w.-])(?P<key>" + _KEY + r")(?(kq)(?P=kq))"
    r"(?P<sep>[ \t]*+(?::=|=>|=(?!=)|:(?![:/=]))(?P<sp>[ \t]*+))"
)
_VAR_REF = r"\$\{[^}\s]{0,128}+\}"
_KV_VALUE_RE: Final = re.compile(
    r"\\\"(?P<v1>(?:(?!\\\").)*+)(?:\\\"|$)"
    r"|\"(?P<v2>(?:[^\"\\]|\\.?)*+)(?:\"|$)"
    r"|'(?P<v3>(?:[^'\\]|\\.?)*+)(?:'|$)"
    # A bare value may sit in one pair of brackets: Go's map[password:[x]].
    r"|(?!\[REDACTED)\[?(?P<v4>(?:" + _MARK + r"|" + _VAR_REF + r"|" + _FIRST_VALUE_CHAR + r")"
    r"(?:" + _MARK + r"|" + _VAR_REF + r"|" + _VALUE_CHARS + r")*+)"
)

# --password value / -token value (the '=' form is handled by _KV_RE).
_FLAG_RE: Final = re.compile(
    r"(?<![\w-])(?P<pre>(?P<key>--?[A-Za-z][\w-]*+)[ \t]++)(?![-\[])(?P<val>[^\s\"',;]++)"
)

# Cookie: a=1; b=2 / Set-Cookie: sid=x; Path=/; HttpOnly
_COOKIE_RE: Final = re.compile(
    r"(?i)(?P<pre>(?<![\w-])(?:set-)?cookie\\?[\"']?[ \t]*+:[ \t]*+\[?\\?[\"']?)"
    r"(?P<val>[^\"'\]\\]++)"
)
# A name starts only where a run of name characters starts (tried once per run).
_COOKIE_PAIR_RE: Final = re.compile(r"(?<![^=;\s])(?P<name>[^=;\s]++)=(?P<value>[^;]*+)")
_COOKIE_ATTRIBUTES: Final = frozenset(
    ("path", "domain", "expires", "max-age", "samesite", "secure", "httponly", "priority")
)
# Slack incoming-webhook URLs carry their secret in the path.
_SLACK_WEBHOOK_RE: Final = re.compile(
    r"(?P<pre>hooks\.slack\.com/(?:services|workflows|triggers)/)"
    + _NOT_MARKED
    + r"(?P<cred>[\w/-]+)"
)

# mysql -pSECRET / -p'SECRET' / -p"SECRET" (attached: "-p" alone prompts, and "-P" is
# the port); only on a line that names a MySQL client, since "-p8080:80" is a port.
_MYSQL_CLIENT_RE: Final = re.compile(r"(?i)(?<![\w-])(?:mysql|mariadb)\w*+")
_MYSQL_P_RE: Final = re.compile(
    r"(?<![\w-])(?P<pre>-p)(?:'(?P<p1>[^']++)'?|\"(?P<p2>[^\"]++)\"?|(?P<p3>[^\s'\"]++))"
)

# <password>value</password>
_XML_RE: Final = re.compile(
    r"<(?P<key>[A-Za-z_][\w.:-]*+)>" + _NOT_MARKED + r"(?P<val>[^<]++)</(?P=key)>"
)
# curl -u user:password / --user user:password
_CURL_USER_RE: Final = re.compile(
    r"(?P<pre>(?<![\w-])(?:-u|--user|--proxy-user)[ \t]++[\"']?[^\s:\"']++:)"
    + _NOT_MARKED
    + r"(?P<pw>[^\s\"']+)"
)

# A line that is nothing but a long base64 run: PEM body seen without its BEGIN line.
_BLOB_RE: Final = re.compile(
    r"^(?P<pre>[ \t]*+)(?P<val>[A-Za-z0-9+/]{60,}+={0,2}+)(?P<post>[ \t]*+)$"
)

_PEM_BEGIN_RE: Final = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PEM_END_RE: Final = re.compile(r"-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----")
_PEM_MATERIAL_RE: Final = re.compile(r"[A-Za-z0-9+/=]{16,}")
_TRAILING_PUNCT: Final = ".,;:!?)"


def _is_secret_key(key: str) -> bool:
    """Whether a key name holds a secret (``db_password``), not metadata (``token_ttl``)."""
    if len(key) <= _CACHED_KEY_LEN:
        return _is_secret_key_cached(key)
    return _classify_key(key)


_CACHED_KEY_LEN: Final = 64


def _classify_key(key: str) -> bool:
    snake = _snake(key)
    if not _SECRET_WORD_RE.search(snake):
        return False
    return _NON_SECRET_SUFFIX_RE.search(snake) is None


# Log lines repeat their keys (user, host, password ...): a small cache of short ones.
_is_secret_key_cached: Final = functools.lru_cache(maxsize=512)(_classify_key)


def _snake(key: str) -> str:
    return _CAMEL_RE.sub("_", key).lower().replace("-", "_").replace(".", "_").strip("_")


def _is_auth_key(key: str) -> bool:
    """Whether a key is an ``auth`` key (``auth``, ``basic_auth``), secret only by its value."""
    return _AUTH_KEY_RE.search(_snake(key)) is not None


def _is_placeholder(value: str) -> bool:
    if not value or value.startswith("[REDACTED"):
        return True
    return _PLACEHOLDER_RE.fullmatch(value) is not None


def _looks_secret(value: str) -> bool:
    """Whether a bare word after ``key: `` in running text looks like a secret.

    ``invalid token: expired`` is prose; ``password: hunter2`` is not.
    """
    if _is_placeholder(value):
        return False
    if value.isdigit():
        return len(value) >= 4
    has_digit = any(c.isdigit() for c in value)
    has_alpha = any(c.isalpha() for c in value)
    if has_digit and has_alpha:
        return True
    if any(not c.isalnum() for c in value):
        return True
    if any(c.islower() for c in value) and any(c.isupper() for c in value[1:]):
        return True
    return len(value) >= 24


# Words that, after "token: " or "--secret ", are a status rather than a secret.
_STATUS_TEXT: Final = (
    "expired expires expiring invalid missing revoked rejected required empty malformed"
    " unknown denied mismatch mismatched ok valid accepted present absent changed rotated"
    " reset refreshed renewed loaded saved updated created deleted found error failed"
    " failure success ignored disabled enabled redacted hidden provided supplied given"
    " wrong bad incorrect too is was not no none unsupported deprecated unavailable"
    " unauthorized forbidden timeout sent received stored generated"
)
_STATUS_WORDS: Final = frozenset(_STATUS_TEXT.split())
# After a value: another plain word that is not itself a key ("signature mismatch").
_PROSE_NEXT_RE: Final = re.compile(r"[ \t]++[A-Za-z]++(?![\w=:.\[-])")


def _is_prose_value(core: str, line: str, after: int) -> bool:
    """Whether a bare word after ``key: `` or ``--key `` is prose rather than a secret.

    ``password: hunter2`` and ``user: app, password: hunter`` are secrets;
    ``refresh token: expired`` and ``invalid token: signature mismatch`` are not.

    Args:
        core: The candidate value, without trailing punctuation.
        line: The line the value is in.
        after: Where the text following the candidate value starts in ``line``
            (an index, not a copy: copying the rest of the line for every
            candidate made long lines quadratic).

    Returns:
        True if the value should be kept.
    """
    if _looks_secret(core):
        return False
    if _is_placeholder(core) or core.lower() in _STATUS_WORDS:
        return True
    return _PROSE_NEXT_RE.match(line, after) is not None


def _bare_core(value: str, line: str, start: int) -> str | None:
    """The part of a bare value at ``line[start:]`` to mask, or None if it reads as prose."""
    core = value.rstrip(_TRAILING_PUNCT)
    if not core or _is_prose_value(core, line, start + len(core)):
        return None
    return core


def _mask_bare(m: re.Match[str], group: str) -> str | None:
    """Mask a bare value found in prose position, or None if it reads as prose."""
    core = _bare_core(m.group(group), m.string, m.start(group))
    if core is None:
        return None
    start = m.start(group) - m.start()
    whole = m.group(0)
    return whole[:start] + REDACTED + whole[start + len(core) :]


def _span_replace(m: re.Match[str], group: str, replacement: str) -> str:
    """``m.group(0)`` with the span of ``group`` replaced."""
    start, end = m.span(group)
    base = m.start()
    whole = m.group(0)
    return whole[: start - base] + replacement + whole[end - base :]


def _mask_group(group: str) -> Callable[[re.Match[str]], str]:
    def repl(m: re.Match[str]) -> str:
        value = m.group(group)
        if not value or value.startswith("[REDACTED"):
            return m.group(0)
        return _span_replace(m, group, REDACTED)

    return repl


def _auth_header(m: re.Match[str]) -> str:
    cred = m.group("cred")
    if cred.startswith("[REDACTED"):
        return m.group(0)
    if m.group("scheme") is None:
        masked = _mask_bare(m, "cred")
        return m.group(0) if masked is None else masked
    return _span_replace(m, "cred", REDACTED)


def _yaml(line: str) -> str:
    """``key: value`` at the start of a line: the value runs to a comment or the end."""
    m = _YAML_RE.match(line)
    if m is None:
        return line
    key = m.group("key")
    trail = _YAML_TRAIL_RE.search(line, m.end() + 1)
    end = len(line) if trail is None else trail.start()
    value = line[m.end() : end]
    if not _is_secret_key(key) or _is_placeholder(value):
        return line
    if _is_auth_key(key) and not _looks_secret(value):
        return line  # "auth: ldap"
    if value.split(maxsplit=1)[0].rstrip(_TRAILING_PUNCT).lower() in _STATUS_WORDS:
        return line  # "secret: not found", "password: expired"
    return m.group("pre") + REDACTED + line[end:]


def _kv_span(key: re.Match[str], value: re.Match[str]) -> tuple[int, int] | None:
    """The span of ``line`` to mask for a secret key and its value, or None to keep it."""
    auth = _is_auth_key(key.group("key"))  # "auth": secret only if it looks like one
    for group in ("v1", "v2", "v3"):
        text = value.group(group)
        if text is not None:
            if _is_placeholder(text) or (auth and not _looks_secret(text)):
                return None
            return value.span(group)
    text = value.group("v4")
    if _is_placeholder(text):
        return None
    start = value.start("v4")
    prose_position = (
        key.group("kq") is None and key.group("sep").strip() == ":" and bool(key.group("sp"))
    )
    if auth:
        core = text.rstrip(_TRAILING_PUNCT)
        return (start, start + len(core)) if _looks_secret(core) else None
    if prose_position:
        # "invalid token: signature mismatch" -- a word after "key: " in running text.
        core = _bare_core(text, value.string, start)
        return None if core is None else (start, start + len(core))
    return value.span("v4")


def _kv(line: str) -> str:
    """Mask the values of secret keys in ``key=value``, ``"key": "value"``, ``key: value``.

    After a key that is not secret (or a value that reads as prose) the search
    resumes right after the key, so ``refresh: access_token=x`` still masks ``x``.
    """
    out: list[str] = []
    pos = done = 0
    while (key := _KV_KEY_RE.search(line, pos)) is not None:
        pos = key.end("key")
        if not _is_secret_key(key.group("key")):
            continue
        value = _KV_VALUE_RE.match(line, key.end())
        if value is None:
            continue
        span = _kv_span(key, value)
        if span is None:
            continue
        out.append(line[done : span[0]])
        out.append(REDACTED)
        done = span[1]
        pos = value.end()
    if not out:
        return line
    out.append(line[done:])
    return "".join(out)


def _cookie_pair(m: re.Match[str]) -> str:
    value = m.group("value").strip()
    if m.group("name").lower() in _COOKIE_ATTRIBUTES or _is_placeholder(value):
        return m.group(0)
    return m.group("name") + "=" + REDACTED


def _cookie(m: re.Match[str]) -> str:
    return m.group("pre") + _COOKIE_PAIR_RE.sub(_cookie_pair, m.group("val"))


def _xml(m: re.Match[str]) -> str | None:
    key, value = m.group("key").rpartition(":")[2], m.group("val")
    if not _is_secret_key(key) or _is_placeholder(value):
        return None
    if _is_auth_key(key) and not _looks_secret(value):
        return None  # <auth>ldap</auth>
    return _span_replace(m, "val", REDACTED)


def _flag(m: re.Match[str]) -> str | None:
    key = m.group("key")
    if not _is_secret_key(key):
        return None
    if _is_auth_key(key) and not _looks_secret(m.group("val").rstrip(_TRAILING_PUNCT)):
        return None  # --auth basic
    return _mask_bare(m, "val")


def _blob(m: re.Match[str]) -> str:
    value = m.group("val")
    if not (
        any(c.isupper() for c in value)
        and any(c.islower() for c in value)
        and any(c.isdigit() for c in value)
    ):
        return m.group(0)
    return m.group("pre") + _kind("base64-blob") + m.group("post")


def _mysql(line: str) -> str:
    if _MYSQL_CLIENT_RE.search(line) is None:
        return line

    def repl(m: re.Match[str]) -> str:
        group = next(g for g in ("p1", "p2", "p3") if m.group(g) is not None)
        if m.group(group).startswith("[REDACTED"):
            return m.group(0)
        return _span_replace(m, group, REDACTED)

    return _MYSQL_P_RE.sub(repl, line)


def _aws_secret_line(m: re.Match[str]) -> str:
    value = m.group("val")
    if all(c in string.hexdigits for c in value):
        return m.group(0)  # a SHA-1 (git commit), not a key
    upper = any(c.isupper() for c in value)
    lower = any(c.islower() for c in value)
    other = any(c.isdigit() or c in "+/" for c in value)
    if not (upper and lower and other):
        return m.group(0)
    return m.group("pre") + _kind("aws-secret-key") + m.group("post")


def _aws(line: str) -> str:
    if not _AWS_KEY_ID_RE.search(line):
        return line

    def secret(m: re.Match[str]) -> str:
        value = m.group(0)
        mixed = any(c.isupper() for c in value) and any(c.islower() for c in value)
        return _kind("aws-secret-key") if mixed and any(c.isdigit() for c in value) else value

    line = _AWS_SECRET_NEAR_ID_RE.sub(secret, line)
    return _AWS_KEY_ID_RE.sub(_kind("aws-access-key-id"), line)


_Rule = Callable[[str], str]


def _sub(pattern: re.Pattern[str], repl: str | Callable[[re.Match[str]], str]) -> _Rule:
    def rule(line: str) -> str:
        return pattern.sub(repl, line)

    return rule


def _scan(pattern: re.Pattern[str], repl: Callable[[re.Match[str]], str | None]) -> _Rule:
    """Like :func:`_sub`, but a declined match (``repl`` returns None) only skips its key.

    ``refresh: access_token=x`` must not let the non-secret ``refresh:`` swallow
    ``access_token=x`` as its value: after a decline the search resumes right
    after the key, so the value is scanned again for keys of its own.
    """

    def rule(line: str) -> str:
        out: list[str] = []
        pos = 0
        done = 0
        while (m := pattern.search(line, pos)) is not None:
            replacement = repl(m)
            if replacement is None:
                pos = m.end("key")
                continue
            out.append(line[done : m.start()])
            out.append(replacement)
            done = pos = m.end()
        if not out:
            return line
        out.append(line[done:])
        return "".join(out)

    return rule


_KEY_WORDS: Final = ("pass", "pwd", "secret", "token", "key", "signature", "auth")
_SHAPE_TRIGGERS: Final[dict[str, tuple[str, ...]]] = {
    _kind("enrollment-token"): ("flte_",),
    _kind("api-token"): ("flta_",),
    _kind("github-token"): ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    _kind("gitlab-token"): ("glpat-",),
    _kind("slack-token"): ("xox", "xapp-"),
    _kind("stripe-key"): ("_live_", "_test_", "whsec_"),
    _kind("google-api-key"): ("aiza",),
    _kind("jwt"): ("eyj",),
}

# (substrings of the lower-cased line that must be present, rule).  The triggers
# only skip work: each is implied by its rule's pattern.
_RULES: Final[tuple[tuple[tuple[str, ...], _Rule], ...]] = (
    (("://",), _sub(_URL_PASSWORD_RE, _mask_group("pw"))),
    (("jdbc:oracle",), _sub(_ORACLE_RE, _mask_group("pw"))),
    (("authorization",), _sub(_AUTH_DIGEST_RE, _mask_group("cred"))),
    (("authorization",), _sub(_AUTH_HEADER_RE, _auth_header)),
    (("key", "token"), _sub(_API_KEY_HEADER_RE, _mask_group("cred"))),
    (("sig=",), _sub(_SAS_SIG_RE, _mask_group("cred"))),
    (("cookie",), _sub(_COOKIE_RE, _cookie)),
    (("hooks.slack.com",), _sub(_SLACK_WEBHOOK_RE, _mask_group("cred"))),
    (("akia", "asia"), _aws),
    *((_SHAPE_TRIGGERS[marker], _sub(pattern, marker)) for pattern, marker in _SHAPE_RULES),
    (("bearer",), _sub(_BEARER_RE, _mask_group("cred"))),
    (("-u", "--user", "--proxy-user"), _sub(_CURL_USER_RE, _mask_group("pw"))),
    (_KEY_WORDS, _scan(_XML_RE, _xml)),
    (_KEY_WORDS, _yaml),
    (_KEY_WORDS, _kv),
    (_KEY_WORDS, _scan(_FLAG_RE, _flag)),
    (("mysql", "mariadb"), _mysql),
)

_MAX_PASSES: Final = 8
_BLOB_MIN: Final = 60
_AWS_SECRET_LEN: Final = 40


def _redact_plain(line: str) -> str:
    """Apply every rule until the line stops changing (which makes redaction idempotent)."""
    for _ in range(_MAX_PASSES):
        before = line
        low = line.lower()
        for triggers, rule in _RULES:
            if any(t in low for t in triggers):
                changed = rule(line)
                if changed != line:
                    line = changed
                    low = line.lower()
        if len(line) >= _BLOB_MIN:
            line = _BLOB_RE.sub(_blob, line)
        if len(line) >= _AWS_SECRET_LEN:
            line = _AWS_SECRET_LINE_RE.sub(_aws_secret_line, line)
        if line == before:
            break
    return line


class Redactor:
    """Line-at-a-time redaction that tracks PEM private key blocks across lines.

    :func:`redact` uses one of these per call; use one directly when lines arrive
    one by one (for example from a log file being tailed) so that the inside of a
    private key block split over several calls is still masked.
    """

    def __init__(self, *, in_private_key: bool = False) -> None:
        """Start outside any PEM block, or inside one.

        Args:
            in_private_key: Start where another redactor's :attr:`in_private_key`
                stood, to redact a line out of order (see :meth:`follow`).
        """
        self._in_private_key = in_private_key

    @property
    def in_private_key(self) -> bool:
        """Whether the last line fed opened a private key block that has not ended."""
        return self._in_private_key

    def reset(self) -> None:
        """Forget any open PEM block."""
        self._in_private_key = False

    def follow(self, line: str) -> None:
        """Move past one line as :meth:`redact_line` would, without redacting it.

        Only a PEM marker changes the state, so a line without one costs a
        substring search, not the redaction rules: a caller can learn the state
        before each of many lines and then redact only the few it will keep.

        Args:
            line: One line of log text, with no line break in it.
        """
        if "-----BEGIN " in line or (self._in_private_key and "-----END " in line):
            self.redact_line(line)

    def redact_line(self, line: str) -> str:
        """Redact one line (without its line terminator).

        A line longer than :data:`MAX_LINE_CHARS` is cut first, at a blank, and
        ends with `` [cut: N more chars]``: the rest is dropped, never shown.

        Args:
            line: One line of log text, with no line break in it.

        Returns:
            The line with its secrets masked.
        """
        body, marker = _split_cut(line)
        return self._redact_line(body) + marker

    def _redact_line(self, line: str) -> str:
        if self._in_private_key:
            end = _PEM_END_RE.search(line)
            if end is None:
                return _mask_whole_line(line)
            self._in_private_key = False
            head = line[: end.start()]
            if head.strip():
                indent = head[: len(head) - len(head.lstrip())]
                head = indent + _PRIVATE_KEY_MARKER
            return head + line[end.start() : end.end()] + self._redact_line(line[end.end() :])

        if "-----BEGIN " not in line:
            return _redact_plain(line)
        # PEM markers are kept whole: the other rules only see the text around them.
        pieces: list[str] = []
        pos = 0
        while (begin := _PEM_BEGIN_RE.search(line, pos)) is not None:
            pieces.append(_redact_plain(line[pos : begin.start()]))
            pieces.append(begin.group(0))
            if not line[begin.end() :].strip():
                self._in_private_key = True
                pieces.append(line[begin.end() :])
                return "".join(pieces)
            end = _PEM_END_RE.search(line, begin.end())
            body = line[begin.end() : len(line) if end is None else end.start()]
            if _PEM_MATERIAL_RE.search(body):
                pieces.append(_PRIVATE_KEY_MARKER)
            else:
                pieces.append(_redact_plain(body))
            if end is None:
                return "".join(pieces)
            pieces.append(end.group(0))
            pos = end.end()
        pieces.append(_redact_plain(line[pos:]))
        return "".join(pieces)


def _mask_whole_line(line: str) -> str:
    stripped = line.lstrip()
    if not stripped:
        return line
    return line[: len(line) - len(stripped)] + _PRIVATE_KEY_MARKER


def redact(text: str) -> str:
    """Mask secrets in log text, keeping its lines and its diagnostic value.

    Args:
        text: Log text, one or more lines, with any line terminators.

    Returns:
        The text with the same lines and line terminators, each line redacted:
        tokens, passwords, keys and credentials replaced by ``[REDACTED]`` or
        ``[REDACTED:<kind>]``, everything else unchanged.  Idempotent.
    """
    redactor = Redactor()
    out: list[str] = []
    for chunk in text.splitlines(keepends=True):
        body = chunk.rstrip("\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
        out.append(redactor.redact_line(body) + chunk[len(body) :])
    return "".join(out)
