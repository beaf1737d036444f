"""``KafkaConsumer``: deliveries from one (topic, group) with contiguous, batched commits.

Offsets are committed only after ``ack``/``nack`` and only up to the lowest unsettled offset of
each partition (``OffsetTracker``). With ``commit_interval_ms`` (the broker's; default 100) an
ack only marks its offset settled and a background flush commits every partition's position
on that timer, one request for all the acks in between; at 0 each ack commits before it
returns. Either way a crash re-delivers what was settled but not yet committed (at least
once). When a rebalance takes a partition away, what is settled is committed first, then its
unsettled deliveries are revoked (settling them raises ``DeliveryRevoked``) and the new owner
receives them again from the last committed offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import TYPE_CHECKING, Self

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import IllegalStateError

from mq.errors import BrokerClosed, BrokerError, DeliveryRevoked
from mq.headers import DELIVERY_COUNT, dead_letter_verdict, split_delivery_count
from mq.kafka_codec import decode_headers, decode_key
from mq.offsets import OffsetTracker
from mq.protocol import Delivery

if TYPE_CHECKING:
    from types import TracebackType

    from mq.kafka import KafkaBroker

__all__ = ["KafkaConsumer", "KafkaDelivery"]

logger = logging.getLogger(__name__)

_FETCH_TIMEOUT_MS = 500
_FETCH_MAX_RECORDS = 500


class KafkaDelivery(Delivery):
    """A record delivered by a ``KafkaConsumer``; ``partition``/``offset`` locate it."""

    def __init__(
        self, consumer: KafkaConsumer, record: ConsumerRecord[bytes, bytes], tracker: OffsetTracker
    ) -> None:
        count, headers = split_delivery_count(decode_headers(record.headers))
        super().__init__(
            topic=record.topic,
            payload=record.value or b"",
            key=decode_key(record.key),
            headers=headers,
            delivery_count=count,
        )
        self.partition = TopicPartition(record.topic, record.partition)
        self.offset = record.offset
        self.tracker = tracker
        self.settled = False
        self.revoked = False
        self._consumer = consumer

    def check_live(self) -> None:
        """Raise ``DeliveryRevoked`` when this delivery can no longer be settled."""
        if self.revoked:
            raise DeliveryRevoked(
                f"{self.topic}[{self.partition.partition}]@{self.offset} was revoked (rebalance "
                "or consumer closed); it will be redelivered to the partition's owner"
            )

    async def ack(self) -> None:
        if self.settled:
            return
        self.check_live()
        self.settled = True
        await self._consumer.settle(self)

    async def nack(self, *, requeue: bool = True, reason: str | None = None) -> None:
        if self.settled:
            return
        self.check_live()
        verdict = dead_letter_verdict(
            self,
            requeue=requeue,
            reason=reason,
            max_deliveries=self._consumer.max_deliveries,
            max_message_bytes=self._consumer.broker.max_message_bytes,
        )
        self.settled = True
        try:
            await self._republish(verdict)
        except BaseException:
            self.settled = False
            raise
        await self._consumer.settle(self)

    async def _republish(self, dead_letter_reason: str | None) -> None:
        broker = self._consumer.broker
        if dead_letter_reason is not None:
            await broker.publish_dead_letter(self, dead_letter_reason)
            return
        headers = {**self.headers, DELIVERY_COUNT: str(self.delivery_count + 1)}
        await broker.publish(self.topic, self.payload, key=self.key, headers=headers)


def _highwater(client: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """The partition's last known high watermark; None before its first fetch or once revoked."""
    try:
        high: int | None = client.highwater(tp)
    except (AssertionError, IllegalStateError):  # aiokafka asserts the partition is assigned
        return None
    return high


class _RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards aiokafka's rebalance callbacks to the consumer."""

    def __init__(self, consumer: KafkaConsumer) -> None:
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._consumer.revoke(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._consumer.assign(assigned)


class KafkaConsumer:
    """Competing consumer of one (topic, group); started by ``async with`` or the first fetch."""

    def __init__(self, broker: KafkaBroker, topic: str, group: str) -> None:
        self.broker = broker
        self.topic = topic
        self.group = group
        self.max_deliveries = broker.max_deliveries
        self._client: AIOKafkaConsumer | None = None
        self._buffer: deque[ConsumerRecord[bytes, bytes]] = deque()
        self._trackers: dict[TopicPartition, OffsetTracker] = {}
        self._inflight: dict[TopicPartition, dict[int, KafkaDelivery]] = {}
        self._pending: dict[TopicPartition, int] = {}
        self._commit_lock = broker.new_lock()
        self._start_lock = broker.new_lock()
        self._commit_interval = broker.commit_interval_ms / 1000
        self._flusher: asyncio.Task[None] | None = None
        self._closed = False

    async def start(self) -> None:
        """Connect and subscribe (the group join completes in the background)."""
        await self._started()

    async def _started(self) -> AIOKafkaConsumer:
        if self._client is not None:
            return self._client
        async with self._start_lock:
            if self._closed:
                raise BrokerClosed(f"consumer of {self.topic!r}/{self.group!r} is closed")
            if self._client is None:
                self._client = await self.broker.start_consumer_client(
                    self.topic, self.group, _RebalanceListener(self)
                )
        return self._client

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> KafkaDelivery:
        if self._closed:
            raise StopAsyncIteration
        client = await self._started()
        while not self._buffer:
            if not await self._fetch(client):
                raise StopAsyncIteration
        return self._deliver(self._buffer.popleft())

    def next_ready(self) -> KafkaDelivery | None:
        """The next record of the last fetch, if one is left."""
        if self._closed or not self._buffer:
            return None
        return self._deliver(self._buffer.popleft())

    async def _fetch(self, client: AIOKafkaConsumer) -> bool:
        """Fill the buffer from assigned partitions; False once the consumer is closed."""
        try:
            async with self.broker.translate(f"fetching from {self.topic!r}", bounded=False):
                batches = await client.getmany(
                    timeout_ms=_FETCH_TIMEOUT_MS, max_records=_FETCH_MAX_RECORDS
                )
        except BrokerClosed:
            return False
        if self._closed:
            return False
        for tp, records in batches.items():
            if tp in self._trackers:
                self._buffer.extend(records)
        return True

    def _deliver(self, record: ConsumerRecord[bytes, bytes]) -> KafkaDelivery:
        tp = TopicPartition(record.topic, record.partition)
        tracker = self._trackers[tp]
        tracker.track(record.offset)
        delivery = KafkaDelivery(self, record, tracker)
        self._inflight[tp][record.offset] = delivery
        return delivery

    async def settle(self, delivery: KafkaDelivery) -> None:
        """Mark ``delivery`` done and commit the partition's contiguous position."""
        tp, tracker = delivery.partition, delivery.tracker
        if self._trackers.get(tp) is not tracker:
            delivery.revoked = True
            delivery.check_live()
        self._inflight[tp].pop(delivery.offset, None)
        position = tracker.done(delivery.offset)
        if position is None:
            return
        self._pending[tp] = position
        if self._commit_interval > 0:
            self._start_flusher()
            return
        await self._commit_through(tracker, position)
        if tracker.committed < position:
            delivery.revoked = True
            delivery.check_live()

    def _start_flusher(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush(), name=f"commit:{self.topic}")

    async def _flush(self) -> None:
        """Commit pending positions every ``commit_interval``, until nothing is pending."""
        while self._pending:
            await asyncio.sleep(self._commit_interval)
            async with self._commit_lock:
                try:
                    await self._commit_pending()
                except BrokerError as exc:  # kept pending: the next tick tries again
                    logger.warning("committing offsets of %r failed: %s", self.topic, exc)

    async def _commit_through(self, tracker: OffsetTracker, position: int) -> None:
        """Make sure ``position`` is committed; concurrent acks share one commit request."""
        async with self._commit_lock:
            if tracker.committed < position:
                await self._commit_pending()

    async def _commit_pending(self) -> None:
        """Commit every pending position (call with the commit lock held)."""
        offsets = {tp: p for tp, p in self._pending.items() if tp in self._trackers}
        if not offsets or self._client is None:
            return
        async with self.broker.translate("committing offsets"):
            await self._client.commit(offsets)
        for tp, position in offsets.items():
            self._trackers[tp].committed = position
            if self._pending.get(tp) == position:
                del self._pending[tp]

    async def lag(self) -> dict[int, int]:
        """By partition this consumer holds: the high watermark minus the lowest offset not yet
        settled (buffered, in flight, or not fetched yet). Partitions not fetched from since
        they were assigned are left out (their high watermark is not known yet)."""
        client = self._client
        if client is None:
            return {}
        lags: dict[int, int] = {}
        for tp in list(self._trackers):
            start = await self._unsettled_from(client, tp)
            high = _highwater(client, tp)
            if start is not None and high is not None:
                lags[tp.partition] = max(high - start, 0)
        return lags

    async def _unsettled_from(self, client: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
        if _highwater(client, tp) is None:
            return None
        try:
            position: int = await client.position(tp)
        except IllegalStateError:  # revoked meanwhile
            return None
        buffered = (int(r.offset) for r in self._buffer if (r.topic, r.partition) == tp)
        return min([position, *self._inflight.get(tp, {}), *buffered])

    def assign(self, assigned: set[TopicPartition]) -> None:
        """Fresh trackers for newly assigned partitions (positions restart at the commit)."""
        logger.info("%s/%s assigned %s", self.topic, self.group, sorted(assigned))
        for tp in assigned:
            self._trackers[tp] = OffsetTracker()
            self._inflight[tp] = {}

    async def revoke(self, revoked: set[TopicPartition]) -> None:
        """Commit what is settled, then revoke in-flight deliveries of ``revoked``."""
        async with self._commit_lock:
            with contextlib.suppress(BrokerError):
                await self._commit_pending()
        lost = 0
        for tp in revoked:
            self._trackers.pop(tp, None)
            self._pending.pop(tp, None)
            for delivery in self._inflight.pop(tp, {}).values():
                delivery.revoked = True
                lost += 1
        self._buffer = deque(r for r in self._buffer if (r.topic, r.partition) not in revoked)
        logger.info(
            "%s/%s revoked %s; %d unsettled deliveries go to the new owner",
            self.topic,
            self.group,
            sorted(revoked),
            lost,
        )

    async def close(self) -> None:
        """Leave the group; unsettled deliveries are redelivered to the group."""
        if self._closed:
            return
        self._closed = True
        self.broker.forget(self)
        async with self._start_lock:
            client = self._client
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        if client is None:
            return
        await self.revoke(set(self._trackers))
        self._client = None
        with contextlib.suppress(Exception):
            await client.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
