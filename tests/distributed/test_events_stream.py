"""LLM token events in the per-execution event log: a step's streamed text (``step.token``)
from the real ``openai`` client against a local streaming chat-completions server and from the
offline provider, embedded and on the cluster; the per-node and per-execution switches; the
chunks of a retried attempt told apart and dropped as superseded; coalescing; ``step.skipped``;
trimming the log by age."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
from scenario_support import RuntimeFactory
from support import assert_eventually

from distributed.events import (
    TOKEN,
    AttemptTracker,
    EventRecorder,
    ExecutionEvent,
    drop_superseded,
    read_events,
    streamed_text,
)
from distributed.hooks import HookSet, StepFinished, StepSkipped, StepStarted
from distributed.keys import Keys
from orchestration import Engine, OpenAIProvider, ProviderError
from orchestration.context import current_emitter, current_token_emitter
from orchestration.providers import Message, OfflineProvider, TokenSink
from orchestration.providers.base import Completion
from orchestration.providers.offline import chunks_of
from store import MemoryStore
from tests.orchestration.test_orch_openai import FakeServer

WAIT = 60


async def collect(events: AsyncIterator[ExecutionEvent]) -> list[ExecutionEvent]:
    return [event async for event in events]


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer(chunk_delay=0.25)  # over the token interval: several token events
    listener = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = listener.sockets[0].getsockname()[1]
    yield fake
    listener.close()


def steps_of(events: Sequence[ExecutionEvent], step: str) -> list[tuple[str, int | None]]:
    return [(e.type, e.attempt) for e in events if e.step_id == step]


# -- in a run, embedded and on the cluster --------------------------------------------------------


async def test_an_llm_step_streams_its_reply_from_the_real_openai_client_into_the_log(
    make_runtime: RuntimeFactory, server: FakeServer
) -> None:
    provider = OpenAIProvider(api_key="test-key", base_url=f"http://127.0.0.1:{server.port}/v1")
    local = Engine(provider=provider, default_model="served-model")
    quiet = {"promptTemplate": "Bye", "streamTokens": False}  # the per-node switch
    local.register_blueprint(
        {
            "id": "chat",
            "nodes": [
                {"id": "ask", "uses": "llm-process", "params": {"promptTemplate": "Hi {{who}}"}},
                {"id": "quiet", "uses": "llm-process", "params": quiet},
            ],
            "edges": [{"source": "ask", "target": "quiet"}],
        }
    )
    async with make_runtime(local) as runtime:
        eid = await runtime.engine.execute_async("chat", {"who": "Ada"})
        events = await asyncio.wait_for(collect(runtime.engine.events(eid, follow=True)), WAIT)
        snapshot = await runtime.engine.get_execution_status(eid)

    assert snapshot.status == "completed"
    assert (
        snapshot.steps["ask"].output == "reply #1" and snapshot.steps["quiet"].output == "reply #2"
    )
    tokens = [e for e in events if e.type == TOKEN]
    assert {(e.step_id, e.attempt) for e in tokens} == {("ask", 1)}  # none from "quiet"
    assert len(tokens) >= 2  # the chunks came 250 ms apart: not all in one append
    assert "".join(e.data["text"] for e in tokens) == "reply #1"
    kinds = [kind for kind, _ in steps_of(events, "ask")]
    assert kinds == ["step.started", *[TOKEN] * len(tokens), "step.finished"]
    assert [r.get("stream", False) for r in server.requests] == [True, False]
    assert [e.offset for e in events] == list(range(1, len(events) + 1))


class FlakyStreamer(OfflineProvider):
    """The offline provider, streaming 2 words a chunk, 100 ms apart; its first stream breaks
    off after two chunks (as a dropped connection would), so the step is retried."""

    def __init__(self) -> None:
        super().__init__(chunk_delay=0.1, words_per_chunk=2)
        self.streams = 0

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str = "",
        on_token: TokenSink,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Completion:
        self.streams += 1
        if self.streams > 1:
            return await super().stream(messages, model=model, on_token=on_token)
        answer = (await self.complete(messages)).text
        for chunk in chunks_of(answer, 2)[:2]:
            on_token(chunk)
            await asyncio.sleep(self.chunk_delay)
        raise ProviderError("the stream broke off")


async def test_offline_chunks_reach_the_log_in_order_and_a_retried_attempt_s_are_superseded(
    make_runtime: RuntimeFactory,
) -> None:
    local = Engine(provider=FlakyStreamer())
    local.register_blueprint(
        {
            "id": "story",
            "nodes": [
                {
                    "id": "tell",
                    "uses": "llm-process",
                    "params": {"promptTemplate": "Tell a story about {{who}} and the sea, please."},
                    "config": {"maxRetries": 2, "retryDelay": 10},
                }
            ],
        }
    )
    async with make_runtime(local) as runtime:
        eid = await runtime.engine.execute_async("story", {"who": "Ada"})
        events = await asyncio.wait_for(collect(runtime.engine.events(eid, follow=True)), WAIT)
        snapshot = await runtime.engine.get_execution_status(eid)

    output = snapshot.steps["tell"].output
    assert snapshot.status == "completed" and output.startswith("[offline] Tell a story")
    first = [e for e in events if e.type == TOKEN and e.attempt == 1]
    second = [e for e in events if e.type == TOKEN and e.attempt == 2]
    assert "".join(e.data["text"] for e in first) == "".join(chunks_of(output, 2)[:2])
    assert len(second) >= 2 and "".join(e.data["text"] for e in second) == output
    restart = next(e for e in events if e.type == "step.started" and e.attempt == 2)
    assert max(e.offset for e in first) < restart.offset < min(e.offset for e in second)
    kept = drop_superseded(events)
    assert [e for e in kept if e.type == TOKEN] == second  # only the newest attempt's text
    assert [e for e in events if e not in kept] == first
    assert streamed_text(events) == {"tell": output}


# -- the recorder on a store, without a runtime ---------------------------------------------------


def started(eid: str, step: str, attempt: int = 1, *, tokens: bool = True) -> StepStarted:
    return StepStarted(
        execution_id=eid,
        workflow_id="w",
        step_id=step,
        attempt=attempt,
        worker_id="w1",
        dispatch_latency=0.0,
        tokens=tokens,
    )


def finished(eid: str, step: str, attempt: int = 1) -> StepFinished:
    return StepFinished(
        execution_id=eid,
        workflow_id="w",
        step_id=step,
        attempt=attempt,
        worker_id="w1",
        outcome="completed",
        duration=0.1,
    )


def in_own_context(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a copy of the context, so the emitters it sets do not leak."""
    return contextvars.copy_context().run(fn)


async def test_token_events_are_off_for_an_execution_or_a_recorder_that_turned_them_off() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys)

    def attempt(on: EventRecorder, eid: str, *, tokens: bool) -> bool:
        on.step_started(started(eid, "a", tokens=tokens))
        sink = current_token_emitter.get()
        assert current_emitter.get() is not None  # progress events stay on
        if sink is not None:
            sink("hello")
        on.step_finished(finished(eid, "a"))
        assert current_token_emitter.get() is None  # cleared as the attempt ends
        return sink is not None

    assert in_own_context(lambda: attempt(recorder, "on", tokens=True))
    assert not in_own_context(lambda: attempt(recorder, "off", tokens=False))
    quiet = EventRecorder(store, keys, tokens=False)
    assert not in_own_context(lambda: attempt(quiet, "quiet", tokens=True))
    await recorder.flush()
    await quiet.flush()
    types = {}
    for eid in ("on", "off", "quiet"):
        types[eid] = [e.type for e in await collect(read_events(store, keys, eid))]
    assert types["on"] == ["step.started", TOKEN, "step.finished"]
    assert types["off"] == types["quiet"] == ["step.started", "step.finished"]


async def test_chunks_queued_back_to_back_are_merged_into_one_event_per_attempt() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys, token_chars=10)
    for text in ("ab", "cd", "", "ef"):
        recorder.record_token("e1", "a", 1, text)
    recorder.record_token("e1", "b", 1, "other step")  # another step's chunk: a may pass it
    recorder.record_token("e1", "a", 1, "gh")
    recorder.record("e1", "step.progress", "a", 1, {"message": "half way"})
    recorder.record_token("e1", "a", 1, "ij")  # after the progress event: a new event
    recorder.record_token("e1", "a", 2, "kl")  # another attempt: a new event
    recorder.record_token("e1", "a", 2, "0123456789")  # over token_chars: a new event
    await recorder.flush()
    events = await collect(read_events(store, keys, "e1"))
    assert [(e.type, e.step_id, e.attempt, e.data.get("text")) for e in events] == [
        (TOKEN, "a", 1, "abcdefgh"),
        (TOKEN, "b", 1, "other step"),
        ("step.progress", "a", 1, None),
        (TOKEN, "a", 1, "ij"),
        (TOKEN, "a", 2, "kl"),
        (TOKEN, "a", 2, "0123456789"),
    ]


async def test_text_alone_waits_for_the_token_interval_and_other_events_take_it_along() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys, flush_interval=0.01, token_interval=1.0)
    recorder.record_token("e1", "a", 1, "hello ")
    await asyncio.sleep(0.1)
    assert await store.log_read(keys.events("e1")) == []  # not yet: 1 s for text alone
    recorder.record("e1", "step.progress", "a", 1, {"message": "half way"})

    async def both_appended() -> bool:
        return len(await store.log_read(keys.events("e1"))) == 2

    await assert_eventually(both_appended, timeout=0.5)  # the progress event's 10 ms


async def test_a_skipped_step_is_recorded_through_the_hook_set() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys)
    HookSet([recorder]).step_skipped(
        StepSkipped(execution_id="e1", workflow_id="w", step_id="reject")
    )
    await recorder.flush()
    (event,) = await collect(read_events(store, keys, "e1"))
    assert (event.type, event.step_id, event.attempt) == ("step.skipped", "reject", None)


async def test_the_log_drops_events_older_than_its_max_age_as_it_appends() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys, max_age=0.2)
    recorder.record("e1", "step.progress", "a", 1, {"message": "old"})
    await recorder.flush()
    await asyncio.sleep(0.3)
    recorder.record("e1", "step.progress", "a", 1, {"message": "new"})
    await recorder.flush()
    events = await collect(read_events(store, keys, "e1"))
    assert [(e.offset, e.data["message"]) for e in events] == [(2, "new")]


def event(offset: int, type: str, step: str, attempt: int, text: str = "") -> ExecutionEvent:
    data = {"text": text} if type == TOKEN else {}
    return ExecutionEvent(
        type=type, execution_id="e", at=0.0, step_id=step, attempt=attempt, data=data, offset=offset
    )


def test_the_current_attempt_s_tokens_survive_retries_hung_workers_and_recoveries() -> None:
    log = [
        event(1, "step.started", "a", 1),
        event(2, TOKEN, "a", 1, "x"),  # superseded by the retry
        event(3, "step.started", "a", 2),
        event(4, TOKEN, "a", 2, "a2"),  # and a hung attempt 1 is, even after it:
        event(5, TOKEN, "a", 1, "hung"),
        event(6, "step.started", "b", 1),
        event(7, TOKEN, "b", 1, "b1"),
        event(8, TOKEN, "b", 2, "no start seen"),  # newer than anything seen: current
        event(9, "step.started", "b", 1),  # a recovered generation counts from 1 again
        event(10, TOKEN, "b", 1, "again"),
    ]
    tracker = AttemptTracker()
    live = []
    for e in log:
        tracker.observe(e)
        live.append(e.type == TOKEN and tracker.superseded(e))
    assert [e.offset for e, s in zip(log, live, strict=True) if s] == [5]  # known while reading
    kept = [e.data["text"] for e in drop_superseded(log) if e.type == TOKEN]
    assert kept == ["a2", "again"]
    assert streamed_text(log) == {"a": "a2", "b": "again"}


async def test_a_reader_resumes_in_the_middle_of_a_stream_without_losing_text() -> None:
    store, keys = MemoryStore(), Keys("t/")
    recorder = EventRecorder(store, keys)
    in_own_context(lambda: recorder.step_started(started("e1", "a")))
    for n in range(5):
        recorder.record_token("e1", "a", 1, f"{n} ")
        await recorder.flush()  # one event per chunk
    seen = await collect(read_events(store, keys, "e1"))
    assert [e.type for e in seen] == ["step.started", *[TOKEN] * 5]
    for cut in range(len(seen) + 1):
        resumed = seen[:cut] + await collect(read_events(store, keys, "e1", after=cut))
        assert streamed_text(resumed) == {"a": "0 1 2 3 4 "}
