"""Whether an execution's root has ended: what a child execution's retention waits for."""

from __future__ import annotations

from store import KVStore

from .keys import Keys
from .models import ExecutionRecord

__all__ = ["root_ended"]


async def root_ended(store: KVStore, keys: Keys, eid: str) -> bool:
    """Whether the root of the execution ``eid`` (itself, or its parent's, and so on) has a
    final status, or is gone (expired or purged): then nothing waits for its descendants."""
    while True:
        raw, final = await store.get_many([keys.execution(eid), keys.final(eid)])
        if raw is None:
            return True
        parent = ExecutionRecord.from_bytes(raw).parent
        if parent is None:
            return final is not None
        eid = parent.execution_id
