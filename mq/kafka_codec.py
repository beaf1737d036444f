"""Keys and headers between ``mq`` (str) and Kafka (bytes).

Bytes that are not UTF-8 survive a round trip (``surrogateescape``); payloads are never touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["decode_headers", "decode_key", "encode_headers", "encode_key"]

_ENCODING = "utf-8"
_ERRORS = "surrogateescape"


def encode_key(key: str | None) -> bytes | None:
    return None if key is None else key.encode(_ENCODING, _ERRORS)


def decode_key(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode(_ENCODING, _ERRORS)


def encode_headers(headers: Mapping[str, str]) -> list[tuple[str, bytes]]:
    return [(name, value.encode(_ENCODING, _ERRORS)) for name, value in headers.items()]


def decode_headers(raw: Sequence[tuple[str, bytes | None]] | None) -> dict[str, str]:
    return {name: (value or b"").decode(_ENCODING, _ERRORS) for name, value in raw or ()}
