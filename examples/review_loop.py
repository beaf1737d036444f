"""A content review with a draft/revise loop and a person's approval (offline provider).

    python examples/review_loop.py [--decision approve|reject] [--topic TEXT]

``write`` drafts a post; ``polish`` (a loop) revises it twice, each revision a durable child
execution; ``review`` waits for a person: here the program plays the reviewer and sends the
``review`` signal with the decision, which routes to ``publish`` or ``archive``. From a shell,
the same signal is ``flowloom signal ID review --action approve``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from distributed import Runtime
from orchestration import Engine

BLUEPRINTS = Path(__file__).resolve().parent / "review-loop" / "blueprints"


async def main(decision: str, topic: str) -> None:
    local = Engine()  # OfflineProvider unless you pass one
    local.load_blueprints(BLUEPRINTS)
    with tempfile.TemporaryDirectory() as data:
        async with Runtime.embedded(local, data) as rt:
            execution_id = await rt.engine.execute_async("content-review", {"topic": topic})
            snapshot = await rt.engine.get_execution_status(execution_id)
            while snapshot.status != "awaiting":
                await asyncio.sleep(0.05)  # a real reviewer would be notified instead
                snapshot = await rt.engine.get_execution_status(execution_id)
            polish = snapshot.steps["polish"].output
            print(f"awaiting {snapshot.awaiting} after {polish['iterations']} revisions:")
            print(f"  {polish['output']}")
            await rt.engine.signal(execution_id, "review", payload={"by": "ada"}, action=decision)
            done = await rt.engine.wait(execution_id, timeout=60)
            print(f"{done.status}: {done.outputs}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decision", choices=["approve", "reject"], default="approve")
    parser.add_argument("--topic", default="durable workflows for AI agents")
    args = parser.parse_args()
    asyncio.run(main(args.decision, args.topic))
