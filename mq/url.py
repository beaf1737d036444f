"""Broker URLs: ``open_broker`` makes a broker from one; ``parse_kafka_url`` reads a Kafka one.

    inproc://                                         InProcBroker (one process, in memory)
    kafka://host1:9092,host2:9092                     KafkaBroker (port 9092 when left out)
    kafka://user:password@host:9093                   SASL/PLAIN over plaintext (the default)
    kafka://user:password@host:9093?security_protocol=SASL_SSL&sasl_mechanism=SCRAM-SHA-256
    kafka://host:9092?session_timeout_ms=6000&fetch_max_wait_ms=20     tuning options

Credentials in the userinfo become ``sasl_plain_username``/``sasl_plain_password``; they never
reach a bootstrap address, a ``repr`` or a log line, and every URL an error shows is masked
(``mask_url``). ``SSL``/``SASL_SSL`` get a default TLS context unless ``ssl_context`` is given.

Every problem with a URL is an ``InvalidBrokerURL``: a port that is not a number in 1-65535, a
numeric option that is not a whole number in its range (Kafka's are 32-bit; sizes, counts and
timeouts must be positive), text that is not UTF-8 or holds a control character.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

from mq.errors import InvalidBrokerURL
from mq.inproc import InProcBroker
from mq.kafka import KafkaBroker
from mq.protocol import Broker

__all__ = [
    "KAFKA_URL_OPTIONS",
    "KafkaURL",
    "check_broker_url",
    "mask_url",
    "open_broker",
    "parse_kafka_url",
]

_DEFAULT_KAFKA_PORT = 9092
_SECRET_PARAMETERS = frozenset({"password", "passwd", "pwd", "secret", "token", "api_key"})
_INT_OPTIONS = frozenset(
    {
        "request_timeout_ms",
        "session_timeout_ms",
        "heartbeat_interval_ms",
        "max_poll_interval_ms",
        "fetch_max_wait_ms",
        "commit_interval_ms",
        "linger_ms",
        "max_batch_size",
        "max_deliveries",
        "max_message_bytes",
        "replication_factor",
    }
)
_ZERO_ALLOWED = frozenset(
    {"fetch_max_wait_ms", "commit_interval_ms", "linger_ms"}
)  # the others must be positive
_MAX_INT_OPTION = 2**31 - 1  # Kafka's sizes and timeouts are 32-bit
_STR_OPTIONS = frozenset({"security_protocol", "sasl_mechanism", "client_id"})
KAFKA_URL_OPTIONS = _INT_OPTIONS | _STR_OPTIONS
"""``KafkaBroker`` options a ``kafka://`` URL may carry as query parameters."""
_PROTOCOLS = frozenset({"PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"})


@dataclass(frozen=True)
class KafkaURL:
    """A parsed ``kafka://`` URL: bootstrap hosts and ``KafkaBroker`` options.

    ``repr`` shows the hosts and option names, never the password."""

    hosts: list[str]
    options: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        shown = {k: ("***" if k == "sasl_plain_password" else v) for k, v in self.options.items()}
        return f"KafkaURL(hosts={self.hosts!r}, options={shown!r})"


def open_broker(url: str, **options: Any) -> Broker:
    """Make the broker ``url`` names; ``options`` go to its constructor (and win over the
    URL's). ``inproc://`` gives a new ``InProcBroker`` on every call; ``kafka://`` a
    ``KafkaBroker`` (see the module docstring). TLS/SASL options (``security_protocol``,
    ``ssl_context``, ``sasl_mechanism``, ``sasl_plain_username``, ``sasl_plain_password``)
    pass through to aiokafka."""
    scheme = check_broker_url(url)
    if scheme == "inproc":
        return InProcBroker(**options)
    parsed = parse_kafka_url(url)
    merged = _with_tls({**parsed.options, **options})
    return KafkaBroker(parsed.hosts, **merged)


def check_broker_url(url: str) -> str:
    """Check ``url`` without connecting; return its scheme. Raises ``InvalidBrokerURL``."""
    if not isinstance(url, str):
        raise InvalidBrokerURL(f"a broker URL must be a str, not {type(url).__name__}")
    _check_text(url)
    scheme, sep, _ = url.partition("://")
    if not sep:
        raise InvalidBrokerURL(
            f"broker URL {mask_url(url)!r} has no scheme (inproc:// or kafka://host:9092)"
        )
    if scheme == "inproc":
        return scheme
    if scheme == "kafka":
        parse_kafka_url(url)
        return scheme
    raise InvalidBrokerURL(
        f"unknown broker URL scheme {scheme!r} in {mask_url(url)!r} (inproc:// or kafka://)"
    )


def parse_kafka_url(url: str) -> KafkaURL:
    """Hosts and options of ``kafka://[user:password@]host[:port][,host…][?option=value…]``."""
    _check_text(url)
    shown = mask_url(url)
    rest = url.partition("://")[2]
    if "#" in rest:
        raise InvalidBrokerURL(f"kafka URL {shown!r} has a fragment (#…); remove it")
    location, _, query = rest.partition("?")
    userinfo, at, hostlist = location.rpartition("@")
    options = _query_options(shown, query)
    if at:
        options = {**_credentials(url, userinfo), **options}
    hosts = [h.strip() for h in hostlist.rstrip("/").split(",") if h.strip()]
    if not hosts:
        raise InvalidBrokerURL(f"kafka URL {shown!r} names no host")
    return KafkaURL([_with_port(shown, host) for host in hosts], options)


def _credentials(url: str, userinfo: str) -> dict[str, Any]:
    user, sep, password = userinfo.partition(":")
    if not user or not sep:  # a lone word may be a token: show none of it
        hidden = url.replace(userinfo + "@", "***@", 1)
        raise InvalidBrokerURL(f"kafka URL {hidden!r}: credentials must be user:password@")
    hidden = url.replace(userinfo + "@", "***@", 1)
    return {
        "sasl_plain_username": _decoded(hidden, "the user name", user),
        "sasl_plain_password": _decoded(hidden, "the password", password),
        "sasl_mechanism": "PLAIN",
        "security_protocol": "SASL_PLAINTEXT",
    }


def _decoded(hidden: str, what: str, text: str) -> str:
    """``text`` percent-decoded: UTF-8 without control characters (SASL PLAIN separates its
    fields with NUL), or ``InvalidBrokerURL`` naming ``what`` (never showing it)."""
    try:
        value = unquote(text, errors="strict")
    except UnicodeDecodeError:
        raise InvalidBrokerURL(f"kafka URL {hidden!r}: {what} is not UTF-8 once decoded") from None
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise InvalidBrokerURL(f"kafka URL {hidden!r}: {what} holds a control character")
    return value


def _query_options(shown: str, query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        problem = "a parameter is not UTF-8 once decoded"
        raise InvalidBrokerURL(f"kafka URL {shown!r}: {problem}") from None
    for name, value in pairs:
        if any(unicodedata.category(char) == "Cc" for char in name + value):
            raise InvalidBrokerURL(f"kafka URL {shown!r}: a parameter holds a control character")
        if name not in KAFKA_URL_OPTIONS:
            known = ", ".join(sorted(KAFKA_URL_OPTIONS))
            raise InvalidBrokerURL(
                f"kafka URL {shown!r}: unknown parameter {name!r} (known: {known}; "
                "credentials go in the user:password@ part)"
            )
        options[name] = _option_value(shown, name, value)
    return options


def _check_text(url: str) -> None:
    """A URL is printable UTF-8 text: no lone surrogates, no control characters (NUL, newline).
    The message does not echo the URL: it may hold a password the mask cannot find."""
    for index, char in enumerate(url):
        category = unicodedata.category(char)
        if category in ("Cs", "Cc"):
            what = "a lone surrogate (not UTF-8)" if category == "Cs" else "a control character"
            raise InvalidBrokerURL(
                f"broker URL holds {what} (U+{ord(char):04X}) at position {index}"
            )


def _option_value(shown: str, name: str, value: str) -> Any:
    if name in _INT_OPTIONS:
        low = 0 if name in _ZERO_ALLOWED else 1
        if not (value.isascii() and value.isdigit()) or not low <= int(value) <= _MAX_INT_OPTION:
            raise InvalidBrokerURL(
                f"kafka URL {shown!r}: {name} must be a whole number from {low} to "
                f"{_MAX_INT_OPTION}"
            )
        return int(value)
    if name == "security_protocol" and value.upper() not in _PROTOCOLS:
        known = ", ".join(sorted(_PROTOCOLS))
        raise InvalidBrokerURL(f"kafka URL {shown!r}: security_protocol must be one of {known}")
    return value.upper() if name in ("security_protocol", "sasl_mechanism") else value


def _with_tls(options: dict[str, Any]) -> dict[str, Any]:
    """A default TLS context for SSL protocols when none is given (aiokafka requires one)."""
    protocol = str(options.get("security_protocol", "PLAINTEXT")).upper()
    if protocol in ("SSL", "SASL_SSL") and options.get("ssl_context") is None:
        from aiokafka.helpers import create_ssl_context

        return {**options, "ssl_context": create_ssl_context()}
    return options


def mask_url(url: str) -> str:
    """Return ``url`` with every password in it (userinfo or a ``password=`` style query
    parameter) replaced by ``***``; a URL that cannot be parsed, or has an ``@`` before its
    query that is not in a userinfo urllib recognises, is not echoed at all.

    The same rule as ``store.errors.mask_url`` (``mq`` imports nothing of Flowloom's own).
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


def _mask_parameter(parameter: str) -> str:
    name, sep, value = parameter.partition("=")
    key = unquote(name).lower()
    if sep and value and (key in _SECRET_PARAMETERS or key.endswith("_password")):
        return f"{name}=***"
    return parameter


def _with_port(shown: str, host: str) -> str:
    name, sep, port = host.rpartition(":")
    if host.startswith("[") and host.endswith("]"):  # [::1]: an IPv6 address without a port
        return f"{host}:{_DEFAULT_KAFKA_PORT}"
    if not sep:
        return f"{host}:{_DEFAULT_KAFKA_PORT}"
    if not name or not (port.isascii() and port.isdigit()) or not 0 < int(port) <= 65535:
        raise InvalidBrokerURL(f"bad host:port {host!r} in {shown!r} (a port is 1-65535)")
    return host
