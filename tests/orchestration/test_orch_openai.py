"""OpenAIProvider with the real openai client against a local chat-completions server, plain
and streamed (``stream=True``: server-sent events, one chunk of text each)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from support import assert_eventually

from orchestration import Agent, Engine, OpenAIProvider, ProviderError
from orchestration.context import NodeContext, Services, current_context
from orchestration.graph import Node
from orchestration.nodes import LLMProcessNode
from orchestration.providers import Completion, OfflineProvider
from orchestration.providers.offline import chunks_of


@dataclass
class FakeServer:
    """Speaks just enough HTTP/1.1 + chat-completions; answers from ``script`` in order.

    A request with ``"stream": true`` gets server-sent events (chunked), the reply ``reply #N``
    in the chunks ``reply``, `` #``, ``N``, ``chunk_delay`` seconds apart. Behaviours: ``ok``
    (the default), ``500``, ``hang``; for streams also ``hold`` (the first chunk, then the rest
    once ``release`` is set), ``break`` (the first chunk, then the connection drops) and
    ``error`` (the first chunk, then an error event)."""

    script: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0
    chunk_delay: float = 0.0
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        request_line = await reader.readline()
        if not request_line:
            return False
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append(json.loads(body or b"{}"))
        self.headers.append(headers)
        behaviour = self.script.pop(0) if self.script else "ok"
        if behaviour == "hang":
            await asyncio.Event().wait()
        if self.requests[-1].get("stream") and behaviour != "500":
            return await self._stream(writer, behaviour)
        status, payload = (
            (500, {"error": {"message": "boom"}})
            if behaviour == "500"
            else (200, _completion(f"reply #{len(self.requests)}"))
        )
        data = json.dumps(payload).encode()
        writer.write(
            f"HTTP/1.1 {status} {'OK' if status == 200 else 'Internal Server Error'}\r\n"
            f"content-type: application/json\r\ncontent-length: {len(data)}\r\n"
            "retry-after-ms: 1\r\n\r\n".encode()
            + data
        )
        await writer.drain()
        return True

    async def _stream(self, writer: asyncio.StreamWriter, behaviour: str) -> bool:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n"
        )
        pieces = ["reply", " #", str(len(self.requests))]
        for index, piece in enumerate(pieces):
            if index:
                if behaviour == "hold":
                    await self.release.wait()
                elif behaviour == "break":
                    writer.transport.abort()  # the connection drops mid-stream
                    return False
                elif behaviour == "error":
                    await self._event(writer, {"error": {"message": "overloaded"}})
                    break
                await asyncio.sleep(self.chunk_delay)
            await self._event(writer, _chunk({"role": "assistant", "content": piece}))
        else:
            await self._event(writer, _chunk({}, finish="stop"))
            await self._event(writer, "[DONE]")
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    @staticmethod
    async def _event(writer: asyncio.StreamWriter, data: Any) -> None:
        body = f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()
        writer.write(f"{len(body):x}\r\n".encode() + body + b"\r\n")
        await writer.drain()


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "local-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 0,
        "model": "local-model",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    }


@pytest.fixture
async def server() -> AsyncIterator[FakeServer]:
    fake = FakeServer()
    listener = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = listener.sockets[0].getsockname()[1]
    yield fake
    listener.close()


def _provider(server: FakeServer, **options: Any) -> OpenAIProvider:
    return OpenAIProvider(
        api_key="test-key", base_url=f"http://127.0.0.1:{server.port}/v1", **options
    )


async def test_a_completion_goes_through_the_real_client(server: FakeServer) -> None:
    completion = await _provider(server).complete(
        [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hello"}],
        model="gpt-test",
        temperature=0.2,
    )
    assert (completion.text, completion.model, completion.provider) == (
        "reply #1",
        "local-model",
        "openai",
    )
    request = server.requests[0]
    assert request["model"] == "gpt-test" and request["temperature"] == 0.2
    assert request["messages"][1] == {"role": "user", "content": "hello"}
    assert server.headers[0]["authorization"] == "Bearer test-key"


async def test_a_server_error_is_retried_by_the_client_then_succeeds(server: FakeServer) -> None:
    server.script = ["500", "ok"]
    completion = await _provider(server, max_retries=2).complete(
        [{"role": "user", "content": "hi"}], model="m"
    )
    assert completion.text == "reply #2" and len(server.requests) == 2


async def test_persistent_server_errors_become_a_provider_error(server: FakeServer) -> None:
    server.script = ["500", "500"]
    with pytest.raises(ProviderError, match="InternalServerError"):
        await _provider(server, max_retries=1).complete(
            [{"role": "user", "content": "hi"}], model="m"
        )


async def test_a_slow_server_times_out_as_a_provider_error(server: FakeServer) -> None:
    server.script = ["hang"]
    with pytest.raises(ProviderError, match="Timeout"):
        await _provider(server, max_retries=0).complete(
            [{"role": "user", "content": "hi"}], model="m", timeout=0.2
        )


async def test_the_provider_reads_key_and_url_from_the_environment(
    server: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "env-key")
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://127.0.0.1:{server.port}/v1")
    await OpenAIProvider().complete([{"role": "user", "content": "hi"}], model="m")
    assert server.headers[0]["authorization"] == "Bearer env-key"


def test_a_missing_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ProviderError, match="OPENAI_API_KEY"):
        OpenAIProvider()


async def test_an_engine_on_openai_reports_the_provider_it_used(server: FakeServer) -> None:
    engine = Engine(provider=_provider(server), default_model="served-model")
    blueprint = {
        "id": "hello",
        "nodes": [
            {"id": "greet", "uses": "llm-process", "params": {"promptTemplate": "Hi {{who}}"}}
        ],
    }
    engine.register_blueprint(blueprint)
    result = await engine.execute("hello", {"who": "Ada"})
    assert result.status == "completed" and result.provider == "openai"
    assert result.outputs == {"greet": "reply #1"}
    assert server.requests[0]["messages"] == [{"role": "user", "content": "Hi Ada"}]
    assert server.requests[0]["model"] == "served-model"


# -- streaming -------------------------------------------------------------------------------------


async def test_a_streamed_completion_hands_over_each_chunk_and_returns_the_whole_text(
    server: FakeServer,
) -> None:
    chunks: list[str] = []
    completion = await _provider(server).stream(
        [{"role": "user", "content": "hello"}], model="gpt-test", on_token=chunks.append
    )
    assert chunks == ["reply", " #", "1"]
    assert (completion.text, completion.model, completion.provider) == (
        "reply #1",
        "local-model",
        "openai",
    )
    assert server.requests[0]["stream"] is True and server.requests[0]["model"] == "gpt-test"


async def test_chunks_arrive_while_the_server_is_still_answering(server: FakeServer) -> None:
    server.script = ["hold"]
    chunks: list[str] = []
    streaming = asyncio.create_task(
        _provider(server).stream(
            [{"role": "user", "content": "hi"}], model="m", on_token=chunks.append
        )
    )
    await assert_eventually(lambda: chunks == ["reply"])
    assert not streaming.done()  # the first chunk is here, the answer is not finished
    server.release.set()
    assert (await asyncio.wait_for(streaming, 10)).text == "reply #1"
    assert chunks == ["reply", " #", "1"]


@pytest.mark.parametrize("behaviour", ["break", "error"])
async def test_a_stream_that_breaks_off_is_a_provider_error_after_its_first_chunks(
    server: FakeServer, behaviour: str
) -> None:
    server.script = [behaviour]
    chunks: list[str] = []
    with pytest.raises(ProviderError, match="stream failed"):
        await _provider(server, max_retries=0).stream(
            [{"role": "user", "content": "hi"}], model="m", on_token=chunks.append
        )
    assert chunks == ["reply"]


async def test_a_server_error_before_a_stream_is_retried_by_the_client(server: FakeServer) -> None:
    server.script = ["500", "ok"]
    chunks: list[str] = []
    completion = await _provider(server, max_retries=2).stream(
        [{"role": "user", "content": "hi"}], model="m", on_token=chunks.append
    )
    assert completion.text == "reply #2" and "".join(chunks) == "reply #2"


async def test_an_llm_node_streams_only_to_a_listener_and_only_if_the_node_allows_it(
    server: FakeServer,
) -> None:
    provider = _provider(server)
    services = Services(provider=provider, default_model="m")
    chunks: list[str] = []
    for stream_tokens in (None, False):
        params: dict[str, Any] = {"promptTemplate": "Hi"}
        if stream_tokens is not None:
            params["streamTokens"] = stream_tokens
        node = Node(id="greet", type="llm-process", params=params)
        ctx = NodeContext(
            execution_id="e", node=node, state={}, outputs={}, token_emitter=chunks.append
        )
        result = await LLMProcessNode().run(node, ctx, services)
        assert result.output == f"reply #{len(server.requests)}"
    assert chunks == ["reply", " #", "1"]  # the second node turned its tokens off
    assert [r.get("stream", False) for r in server.requests] == [True, False]
    plain = Node(id="plain", type="llm-process", params={"promptTemplate": "x"})
    quiet = NodeContext(execution_id="e", node=plain, state={}, outputs={})  # nobody listens
    await LLMProcessNode().run(plain, quiet, services)
    assert server.requests[-1].get("stream", False) is False
    assert LLMProcessNode().validate(
        Node(id="bad", type="llm-process", params={"promptTemplate": "x", "streamTokens": "no"})
    ) == ["params.streamTokens must be true or false"]


async def test_a_provider_without_streaming_still_works_where_tokens_are_listened_for() -> None:
    class Plain:  # a provider written before streaming existed: complete() only
        name = "plain"

        async def complete(self, messages: Any, *, model: str, **options: Any) -> Completion:
            return Completion("plain answer", model, self.name)

    chunks: list[str] = []
    node = Node(id="n", type="llm-process", params={"promptTemplate": "x"})
    ctx = NodeContext(
        execution_id="e", node=node, state={}, outputs={}, token_emitter=chunks.append
    )
    result = await LLMProcessNode().run(node, ctx, Services(provider=Plain()))
    assert result.output == "plain answer" and chunks == []


async def test_an_agent_streams_to_the_running_step_s_sink_unless_told_not_to() -> None:
    chunks: list[str] = []
    node = Node(id="n", type="agent")
    ctx = NodeContext(
        execution_id="e", node=node, state={}, outputs={}, token_emitter=chunks.append
    )
    provider = OfflineProvider(words_per_chunk=2)
    token = current_context.set(ctx)
    try:
        reply = await Agent("a", provider=provider).run("Tell me about the sea and ships.")
        assert "".join(chunks) == reply and len(chunks) > 1
        chunks.clear()
        await Agent("quiet", provider=provider, stream=False).run("Tell me about the sea.")
        assert chunks == []
    finally:
        current_context.reset(token)
    assert await Agent("alone", provider=provider).run("No step here.")  # no sink: no stream


def test_the_offline_provider_s_chunks_join_into_its_answer_exactly() -> None:
    for text in ("", " ", "one", "  lead and trail  ", "Dear Ada,\n\nThank you for applying."):
        chunks = chunks_of(text, 2)
        assert "".join(chunks) == text
        assert all(chunk.strip() or not text.strip() for chunk in chunks)
