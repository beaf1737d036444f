"""A consumer that takes messages and never acks them; the Kafka tests SIGKILL it.

Usage: python kafka_victim.py BOOTSTRAP TOPIC GROUP COUNT
Prints ``received N`` after each delivery, then blocks forever.
"""

from __future__ import annotations

import asyncio
import sys

from mq import KafkaBroker


async def main(bootstrap: str, topic: str, group: str, count: int) -> None:
    # the timeouts of support.KAFKA_OPTIONS (this script runs without tests/ on its path)
    broker = KafkaBroker(bootstrap, session_timeout_ms=2000, heartbeat_interval_ms=250)
    received = 0
    async for _delivery in broker.consume(topic, group):
        received += 1
        print(f"received {received}", flush=True)
        if received == count:
            break
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
