"""The code-workflow example (functions, an agent, a parallel step, a condition) runs as written,
embedded and on Redis + the Kafka-protocol broker."""

from __future__ import annotations

import subprocess
import sys

import pytest
from cli_support import ROOT, TANSU_QUERY, base_env, delete_redis_prefix, new_tag
from support import require_kafka, require_redis


@pytest.mark.parametrize("mode", ["embedded", "cluster"])
def test_the_code_workflow_example_routes_each_ticket(mode: str) -> None:
    args: list[str] = []
    tag = new_tag()
    if mode == "cluster":
        store = f"{require_redis().split('?')[0]}?prefix={tag}:"
        broker = f"kafka://{require_kafka()}?{TANSU_QUERY}"
        args = ["--store", store, "--broker", broker, "--namespace", tag]
    try:
        done = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "code_workflow.py"), *args],
            env=base_env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    finally:
        if mode == "cluster":
            delete_redis_prefix(f"{tag}:")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("completed - {'result': 'auto-reply sent:")
    assert lines[1].startswith("completed - {'result': 'escalated to a human (6 words)")
