"""``open_broker``: a broker from a URL (``inproc://`` or ``kafka://host:port,host:port``)."""

from __future__ import annotations

from typing import Any

from mq.errors import InvalidBrokerURL
from mq.inproc import InProcBroker
from mq.kafka import KafkaBroker
from mq.protocol import Broker

__all__ = ["open_broker"]

_DEFAULT_KAFKA_PORT = 9092


def open_broker(url: str, **options: Any) -> Broker:
    """Make the broker ``url`` names; ``options`` go to its constructor.

    ``inproc://`` gives a new ``InProcBroker`` on every call. ``kafka://h1:9092,h2:9092`` gives a
    ``KafkaBroker``; TLS/SASL options (``security_protocol``, ``ssl_context``,
    ``sasl_mechanism``, ``sasl_plain_username``, ``sasl_plain_password``) pass through to aiokafka.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise InvalidBrokerURL(f"broker URL {url!r} has no scheme (inproc:// or kafka://)")
    if scheme == "inproc":
        return InProcBroker(**options)
    if scheme == "kafka":
        return KafkaBroker(_kafka_hosts(url, rest), **options)
    raise InvalidBrokerURL(f"unknown broker URL scheme {scheme!r} in {url!r}")


def _kafka_hosts(url: str, rest: str) -> list[str]:
    hosts = [h.strip() for h in rest.rstrip("/").split(",") if h.strip()]
    if not hosts:
        raise InvalidBrokerURL(f"kafka URL {url!r} names no host")
    return [_with_port(url, host) for host in hosts]


def _with_port(url: str, host: str) -> str:
    name, sep, port = host.rpartition(":")
    if not sep:
        return f"{host}:{_DEFAULT_KAFKA_PORT}"
    if not name or not port.isdigit():
        raise InvalidBrokerURL(f"bad host:port {host!r} in {url!r}")
    return host
