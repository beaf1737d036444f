"""OpenAIProvider with the real openai client against a local chat-completions server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from orchestration import Engine, OpenAIProvider, ProviderError


@dataclass
class FakeServer:
    """Speaks just enough HTTP/1.1 + chat-completions; answers from ``script`` in order."""

    script: list[str] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    port: int = 0

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
