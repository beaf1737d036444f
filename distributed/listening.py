"""Listening on a store channel for as long as the store is open, through its failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from store import StoreClosed

from .timebox import reraise_if_cancelling

__all__ = ["RELISTEN", "listen_until_closed"]

log = logging.getLogger(__name__)

RELISTEN = 1.0  # seconds before listening again after the store failed
_M = TypeVar("_M")


async def listen_until_closed(
    listen: Callable[[], AsyncIterator[_M]],
    hear: Callable[[_M], None],
    what: str,
    *,
    lapsed: Callable[[], None] = lambda: None,
) -> None:
    """Hand every message of ``listen()`` to ``hear`` until the store closes. When listening
    fails, or ends, call ``lapsed`` (messages may be missed until it listens again); after a
    failure, log it (``what`` was not heard) and listen again ``RELISTEN`` seconds later."""
    while True:
        try:
            async for message in listen():
                hear(message)
            return  # the store closed
        except StoreClosed:
            return
        except Exception as exc:
            reraise_if_cancelling(exc)
            log.debug("not hearing %s (%r); listening again in %gs", what, exc, RELISTEN)
            lapsed()
            await asyncio.sleep(RELISTEN)
        finally:
            lapsed()
