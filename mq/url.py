"""``open_broker``: a broker from a URL (``inproc://`` or ``kafka://host:port,host:port``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from mq.errors import InvalidBrokerURL
from mq.inproc import InProcBroker
from mq.kafka import KafkaBroker
from mq.protocol import Broker

__all__ = ["mask_url", "open_broker"]

_DEFAULT_KAFKA_PORT = 9092
_SECRET_PARAMETERS = frozenset({"password", "passwd", "pwd", "secret", "token", "api_key"})


def open_broker(url: str, **options: Any) -> Broker:
    """Make the broker ``url`` names; ``options`` go to its constructor.

    ``inproc://`` gives a new ``InProcBroker`` on every call. ``kafka://h1:9092,h2:9092`` gives a
    ``KafkaBroker``; TLS/SASL options (``security_protocol``, ``ssl_context``,
    ``sasl_mechanism``, ``sasl_plain_username``, ``sasl_plain_password``) pass through to aiokafka.
    A ``kafka://`` URL carries hosts only: credentials or parameters in it are refused (with the
    password masked in the error), so they never end up in a bootstrap address or a log line.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidBrokerURL(
            f"broker URL {mask_url(url)!r} has no scheme (inproc:// or kafka://)"
        )
    if scheme == "inproc":
        return InProcBroker(**options)
    if scheme == "kafka":
        return KafkaBroker(_kafka_hosts(url, rest), **options)
    raise InvalidBrokerURL(f"unknown broker URL scheme {scheme!r} in {mask_url(url)!r}")


def mask_url(url: str) -> str:
    """Return ``url`` with every password in it (userinfo or a ``password=`` style query
    parameter) replaced by ``***``; a URL that cannot be parsed is not echoed at all.

    The same rule as ``store.errors.mask_url`` (``mq`` imports nothing of Flowloom's own).
    """
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
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


def _kafka_hosts(url: str, rest: str) -> list[str]:
    shown = mask_url(url)
    if "?" in rest or "#" in rest:
        raise InvalidBrokerURL(
            f"kafka URL {shown!r} takes no parameters; pass them as keyword options"
        )
    if "@" in rest:
        raise InvalidBrokerURL(
            f"kafka URL {shown!r} carries credentials; pass sasl_plain_username and "
            "sasl_plain_password (with sasl_mechanism and security_protocol) as options"
        )
    hosts = [h.strip() for h in rest.rstrip("/").split(",") if h.strip()]
    if not hosts:
        raise InvalidBrokerURL(f"kafka URL {shown!r} names no host")
    return [_with_port(shown, host) for host in hosts]


def _with_port(shown: str, host: str) -> str:
    name, sep, port = host.rpartition(":")
    if not sep:
        return f"{host}:{_DEFAULT_KAFKA_PORT}"
    if not name or not port.isdigit():
        raise InvalidBrokerURL(f"bad host:port {host!r} in {shown!r}")
    return host
