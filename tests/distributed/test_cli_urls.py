"""The CLI never shows a password: its banner masks the store and broker URLs it runs on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from distributed.cli import _where

ROOT = Path(__file__).resolve().parents[2]


def test_the_banner_masks_passwords_in_userinfo_and_in_parameters() -> None:
    where = _where("redis://ada:hunter2@db:6379/0?password=hunter3&prefix=app:", "kafka://k:9092")
    assert "hunter" not in where
    assert (
        where == "store redis://ada:***@db:6379/0?password=***&prefix=app: · broker kafka://k:9092"
    )
    assert (
        _where("leveldb:///tmp/data", "inproc://") == "store leveldb:///tmp/data · broker inproc://"
    )


def test_a_cli_run_prints_no_password_of_the_urls_it_was_given(tmp_path: Path) -> None:
    broker = "inproc://ada:hunter2@local/?password=hunter3"  # inproc ignores the rest of its URL
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPENAI_API_KEY", None)
    done = subprocess.run(
        [sys.executable, "-m", "distributed", "demo", "blog-post", "--broker", broker,
         "--data", str(tmp_path / "data"), "--workers", "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "hunter" not in done.stdout + done.stderr
    assert "broker inproc://ada:***@local/?password=***" in done.stderr
