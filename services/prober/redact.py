"""Stream URLs without their credentials.

A camera URL may carry `user:password@`; it must never reach a log line, an event, a file or
an error message in clear. `redact_url` shows where a URL points with the user info replaced
by `***`; `Redactor.scrub` removes every known secret (and anything shaped like user info in
a URL) from free text, such as an error message built by a library around the URL.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#@\s]*)@")
MASK = "***"


def redact_url(url: str) -> str:
    """`url` with any user info replaced by `***` (rtsp://***@host:554/path)."""
    return _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", url)


def url_secrets(url: str) -> list[str]:
    """The credentials a URL carries, raw and percent-decoded (what a library may print)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    found: set[str] = set()
    if parts is not None and "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        user, _, password = userinfo.partition(":")
        for value in (userinfo, user, password):
            if value:
                found.update({value, unquote(value)})
    # Anything a regex sees as user info too: a malformed URL must not leak either.
    for match in _USERINFO.finditer(url):
        userinfo = match.group("userinfo")
        if userinfo:
            found.update({userinfo, unquote(userinfo)})
            user, _, password = userinfo.partition(":")
            found.update(v for v in (user, password, unquote(password)) if v)
    # Longest first, so a password containing the user name is removed whole.
    return sorted((s for s in found if len(s) >= 1), key=len, reverse=True)


def with_credentials(url: str, username: str, password: str) -> str:
    """`url` with this user info (for credentials kept apart from the inventory)."""
    from urllib.parse import quote

    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    userinfo = quote(username, safe="") + (":" + quote(password, safe="") if password else "")
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


class Redactor:
    """Removes the secrets of every URL it was told about from any text."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add_url(self, url: str) -> None:
        self._secrets.update(url_secrets(url))

    def scrub(self, text: str) -> str:
        text = redact_url(text)
        for secret in sorted(self._secrets, key=len, reverse=True):
            # A one-character user name would mask half the message; the URL form above has
            # removed it where it matters.
            if len(secret) >= 3:
                text = text.replace(secret, MASK)
        return text
