"""``flowloom events ID [--follow] [--after N] [--json]`` in its own process: the whole log of
a finished run (embedded), a live run followed from another process (Redis), resuming after an
offset, and an unknown id."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from cli_app import build
from cli_support import ROOT, base_env, cli, delete_redis_prefix, new_tag
from support import require_redis

from distributed import Runtime
from distributed.cli.exitcodes import EXIT_OK, EXIT_USAGE
from distributed.settings import Settings

WAIT = 60


def lines_of(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


async def finished_run(settings: Settings) -> str:
    async with Runtime.from_settings(build(), settings) as runtime:
        snapshot = await runtime.engine.execute_sync("slow", {"delay": 0}, timeout=WAIT)
        assert snapshot.status == "completed"
        return snapshot.execution_id


async def test_events_prints_a_finished_run_s_log_and_resumes_after_an_offset(
    tmp_path: Path,
) -> None:
    url = f"leveldb://{tmp_path / 'data'}"
    eid = await finished_run(Settings(store_url=url))
    env = base_env(FLOWLOOM_STORE_URL=url)

    done = cli("events", eid, "--json", env=env)
    assert done.returncode == EXIT_OK, done.stderr
    events = lines_of(done.stdout)
    assert [e["offset"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "execution.submitted"
    assert [e["step_id"] for e in events if e["type"] == "step.started"] == ["first", "second"]
    assert [e["data"]["status"] for e in events if e["type"] == "execution.final"] == ["completed"]

    rest = cli("events", eid, "--after", "3", env=env)
    assert rest.returncode == EXIT_OK, rest.stderr
    rows = rest.stdout.splitlines()
    assert len(rows) == len(events) - 3
    assert rows[0].split()[0] == "4"
    assert "execution.final" in rest.stdout and "first#1" not in rows[0]


async def test_events_follows_a_live_run_from_another_process(tmp_path: Path) -> None:
    tag = new_tag()
    url = f"{require_redis().split('?')[0]}?prefix={tag}:"
    settings = Settings(store_url=url, namespace=tag)
    env = base_env(FLOWLOOM_STORE_URL=url, FLOWLOOM_NAMESPACE=tag)
    try:
        async with Runtime.from_settings(build(), settings) as runtime:
            eid = await runtime.engine.execute_async("slow", {"delay": 1.5})
            follower = await asyncio.create_subprocess_exec(
                *[sys.executable, "-m", "distributed", "events", eid, "--follow", "--json"],
                cwd=ROOT,
                env=env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            try:
                out, err = await asyncio.wait_for(follower.communicate(), WAIT)
            finally:
                if follower.returncode is None:
                    follower.kill()
                    await follower.wait()
            assert follower.returncode == EXIT_OK, err.decode()
    finally:
        await asyncio.to_thread(delete_redis_prefix, f"{tag}:")
    events = lines_of(out.decode())
    assert [e["offset"] for e in events] == list(range(1, len(events) + 1))
    types = [e["type"] for e in events]
    assert types.count("execution.final") == 1
    assert types.index("execution.final") > max(
        i for i, e in enumerate(events) if e["type"] == "step.started"
    )


def test_events_of_an_unknown_execution_is_one_line_and_a_usage_error(tmp_path: Path) -> None:
    env = base_env(FLOWLOOM_STORE_URL=f"leveldb://{tmp_path / 'data'}")
    done = cli("events", "no-such-id", env=env)
    assert done.returncode == EXIT_USAGE
    assert done.stderr.count("\n") == 1 and "no-such-id" in done.stderr
