"""A workflow written in code: plain functions, an agent, a parallel step and a condition.

    python examples/code_workflow.py                       # embedded: LevelDB + in-process
    python examples/code_workflow.py --store redis://127.0.0.1:6379/0 \\
        --broker kafka://127.0.0.1:19092                    # on a cluster (workers needed)

On a cluster, workers import this same module (``cd examples`` first so it is importable):

    flowloom worker code_workflow:engine --store redis://... --broker kafka://...
    flowloom run triage --app code_workflow:engine --input '{"ticket": "..."}'

The agent answers with the offline provider unless ``OPENAI_API_KEY`` is set.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from distributed import Runtime
from distributed.settings import Settings
from orchestration import (
    Agent,
    ConditionalStep,
    Engine,
    FunctionStep,
    ParallelStep,
    SequentialStep,
    Workflow,
)

summarizer = Agent("summarizer", "Summarise the customer's ticket in one sentence.")


def word_count(state: Any) -> int:
    return len(str(state["ticket"]).split())


def shouting(state: Any) -> bool:
    text = str(state["ticket"])
    return sum(c.isupper() for c in text) > len(text) / 3


def escalate(state: Any) -> str:
    return f"escalated to a human ({state['words']} words): {state['summary']}"


def auto_reply(state: Any) -> str:
    return f"auto-reply sent: {state['summary']}"


def build() -> Engine:
    """The ``triage`` workflow in a local engine (workers and clients both call this)."""
    local = Engine()
    local.register_workflow(
        Workflow("triage", "Ticket triage", "measure and summarise a ticket, then route it")
        .add_step(
            ParallelStep(
                "measure",
                [
                    FunctionStep("count", word_count, output_key="words"),
                    FunctionStep("tone", shouting, output_key="angry"),
                    SequentialStep(
                        "summarise",
                        summarizer,
                        input_fn=lambda state: str(state["ticket"]),
                        output_key="summary",
                    ),
                ],
            )
        )
        .add_step(
            ConditionalStep(
                "route",
                "angry == true or words > 40",
                if_true=FunctionStep("escalate", escalate, output_key="result"),
                if_false=FunctionStep("reply", auto_reply, output_key="result"),
            )
        )
    )
    return local


engine = build()


async def main(store: str | None, broker: str, namespace: str) -> None:
    with tempfile.TemporaryDirectory() as data:
        url = store or f"leveldb://{data}"
        settings = Settings(store_url=url, broker_url=broker, namespace=namespace)
        async with Runtime.from_settings(engine, settings) as runtime:
            for ticket in ("My invoice shows the wrong date.", "WHY IS MY ORDER LATE AGAIN?"):
                snapshot = await runtime.engine.execute_sync(
                    "triage", {"ticket": ticket}, timeout=60
                )
                print(snapshot.status, "-", snapshot.outputs)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store URL (default: a temporary LevelDB)")
    parser.add_argument("--broker", default="inproc://", help="broker URL")
    parser.add_argument("--namespace", default="flowloom", help="isolates it on shared services")
    options = parser.parse_args()
    asyncio.run(main(options.store, options.broker, options.namespace))
