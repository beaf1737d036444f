"""Errors raised by the ``store`` package.

Every error a store raises derives from :class:`StoreError`; driver errors (redis-py, plyvel) are
translated at the edge with ``raise ... from exc`` and never leak raw::

    StoreError                  base class; catch this to handle any store failure
    ├── StoreUnavailable        the backend cannot be reached (connection refused, timeout, I/O);
    │                           carries ``url`` with any password masked
    ├── StoreLocked             a LevelDB directory is already open in another process; carries
    │                           ``path``; the message points at Redis for multi-process use
    ├── StoreClosed             the store was used after ``close()``
    └── InvalidStoreURL         ``open_store`` got a URL it cannot parse or does not support

Programming mistakes in arguments (a value that is not ``bytes``, an empty key, a non-positive TTL)
raise the built-in ``TypeError`` / ``ValueError`` before anything is written, like ``dict`` does.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

__all__ = [
    "InvalidStoreURL",
    "StoreClosed",
    "StoreError",
    "StoreLocked",
    "StoreUnavailable",
    "mask_url",
]


def mask_url(url: str) -> str:
    """Return ``url`` with every password in it replaced by ``***``.

    A URL carries a password in its userinfo (``redis://user:pw@host``) or in a query parameter
    (``redis://host/0?password=pw``, as redis-py accepts); both are masked, the rest of the URL
    is kept as written. A URL that cannot be parsed, or has an ``@`` before its query that is
    not in a userinfo urllib recognises, is not echoed at all.

    The same rule as ``mq.url.mask_url`` (``store`` imports nothing of ``mq``).
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable url>"
    if parts.username is None and "@" in url.partition("?")[0].partition("#")[0]:
        # An @ outside the authority urlsplit found (a scheme missing or mistyped, like
        # "://user:pw@host" or "user:pw@host"): what precedes it may be a password.
        return "<unparseable url>"
    netloc = parts.netloc
    if password:
        userinfo, _, hostinfo = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{hostinfo}"
    query = "&".join(_mask_parameter(p) for p in parts.query.split("&")) if parts.query else ""
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


_SECRET_PARAMETERS = frozenset({"password", "passwd", "pwd", "secret", "token", "api_key"})
"""Query parameter names (compared case-insensitively, also as a ``_password`` suffix, like
``sasl_plain_password``) whose values ``mask_url`` hides."""


def _mask_parameter(parameter: str) -> str:
    name, sep, value = parameter.partition("=")
    key = unquote(name).lower()
    if sep and value and (key in _SECRET_PARAMETERS or key.endswith("_password")):
        return f"{name}=***"
    return parameter


class StoreError(Exception):
    """Base class of every error raised by a store."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or failed at the I/O level.

    ``url`` is the store URL with any password masked; it is also part of the message.
    """

    def __init__(self, url: str, reason: str) -> None:
        self.url = mask_url(url)
        self.reason = reason
        super().__init__(f"store {self.url} is unavailable: {reason}")


class StoreLocked(StoreError):
    """A LevelDB directory is already opened by another process (or another store object)."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(
            f"LevelDB directory {path!r} is already open in another process. The embedded "
            "LevelDB store is single-process: stop the other process, give each process its "
            "own directory, or use Redis (a redis:// store URL) to share state between "
            "several processes.",
        )


class StoreClosed(StoreError):
    """The store was used after ``close()``."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} is closed")


class InvalidStoreURL(StoreError, ValueError):
    """``open_store`` got a URL it cannot parse or does not support."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = mask_url(url)
        super().__init__(f"invalid store URL {self.url!r}: {reason}")
