"""``flowloom run --follow`` prints what an LLM streams as it arrives, from the event log, in its
own process; ``flowloom events`` then marks the text of a retried attempt as superseded.

The app (``test_cli_stream:streaming_app``) runs the offline provider streaming a word a chunk,
0.1 s apart, on three LLM steps: ``tell`` streams, ``twist`` breaks off after two chunks on its
first attempt and is retried, ``quiet`` has its tokens turned off (``streamTokens: false``).
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cli_support import ROOT, base_env, cli

from distributed.cli.exitcodes import EXIT_OK
from orchestration import Engine, ProviderError
from orchestration.providers import Message, OfflineProvider, TokenSink
from orchestration.providers.base import Completion
from orchestration.providers.offline import chunks_of

WAIT = 60
TELL = "[offline] Tell a story about Ada and the sea."


class FlakyStreamer(OfflineProvider):
    """Streams a word a chunk, 0.1 s apart; the first stream of a ``twist`` prompt breaks off
    after two chunks."""

    def __init__(self) -> None:
        super().__init__(chunk_delay=0.1, words_per_chunk=1)
        self.broken = False

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str = "",
        on_token: TokenSink,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Completion:
        if self.broken or "twist" not in messages[-1]["content"]:
            return await super().stream(messages, model=model, on_token=on_token)
        self.broken = True
        for chunk in chunks_of((await self.complete(messages)).text, 1)[:2]:
            on_token(chunk)
            await asyncio.sleep(self.chunk_delay)
        raise ProviderError("the stream broke off")


def streaming_app() -> Engine:
    """The app the CLI runs (see the module docstring)."""
    engine = Engine(provider=FlakyStreamer())

    def llm(node_id: str, prompt: str, **params: object) -> dict[str, object]:
        return {
            "id": node_id,
            "uses": "llm-process",
            "params": {"promptTemplate": prompt, **params},
            "config": {"maxRetries": 2, "retryDelay": 10},
        }

    engine.register_blueprint(
        {
            "id": "story",
            "nodes": [
                llm("tell", "Tell a story about {{who}} and the sea."),
                llm("twist", "Add a twist to it, with a storm and a lighthouse."),
                llm("quiet", "Say goodbye quietly.", streamTokens=False),
            ],
            "edges": [
                {"source": "tell", "target": "twist"},
                {"source": "twist", "target": "quiet"},
            ],
        }
    )
    return engine


async def test_run_follow_prints_streamed_text_as_it_arrives_and_events_marks_superseded_text(
    tmp_path: Path,
) -> None:
    data = str(tmp_path / "data")
    args = ["run", "story", "--app", "test_cli_stream:streaming_app", "--data", data]
    args += ["--input", json.dumps({"who": "Ada"}), "--follow"]
    proc = await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "distributed", *args],
        cwd=ROOT,
        env=base_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None and proc.stdout is not None
    arrivals: list[tuple[float, str]] = []  # (when, stderr so far)
    err = ""
    try:
        async with asyncio.timeout(WAIT):
            while chunk := await proc.stderr.read(4096):
                err += chunk.decode()
                arrivals.append((time.monotonic(), err))
            out = (await proc.stdout.read()).decode()
            await proc.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == EXIT_OK, err

    # tell's text came bit by bit (9 words, 0.1 s apart), not all at once at the end
    first = next(t for t, text in arrivals if "▸ tell  [offline]" in text)
    whole = next(t for t, text in arrivals if f"▸ tell  {TELL}\n" in text)
    assert whole - first >= 0.3, arrivals
    lines = err.splitlines()
    assert lines.index(f"  ▸ tell  {TELL}") < _line(lines, "completed tell")
    # twist: the text of attempt 1, then the note that attempt 2 supersedes it, then its text
    broken = _line(lines, "▸ twist  [offline] Add")
    retrying = _line(lines, "retrying  twist")
    note = _line(lines, "↻ twist: attempt 2 started")
    again = _line(lines, "▸ twist#2  [offline] Add a twist to it, with a storm and a lighthouse.")
    assert broken < retrying < note < again < _line(lines, "completed twist")
    assert "▸ quiet" not in err and _line(lines, "completed quiet") > again  # tokens off
    assert "completed" in out

    # flowloom events: the first attempt's text is marked superseded, the second's is not
    eid = re.search(r"execution (\S+) · workflow story", out)
    assert eid is not None, out
    env = base_env(FLOWLOOM_STORE_URL=f"leveldb://{data}")
    done = cli("events", eid.group(1), "--json", env=env)
    assert done.returncode == EXIT_OK, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    tokens = [e for e in events if e["type"] == "step.token" and e["step_id"] == "twist"]
    assert {e["attempt"] for e in tokens} == {1, 2}
    assert all(e.get("superseded", False) == (e["attempt"] == 1) for e in tokens)
    hidden = cli("events", eid.group(1), "--no-tokens", env=env)
    assert hidden.returncode == EXIT_OK and "step.token" not in hidden.stdout
    assert "step.finished" in hidden.stdout


def _line(lines: list[str], text: str) -> int:
    """The index of the first line containing ``text``."""
    return next(i for i, line in enumerate(lines) if text in line)
