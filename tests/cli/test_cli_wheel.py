"""``pip install flowloom && flowloom demo``: the demo runs from a wheel installed into a fresh
virtualenv, outside any checkout, with no service and no key, and keeps its data where it says.

The wheel is built once without build isolation and installed without dependencies; the fresh
virtualenv borrows the test environment's third-party packages through a ``.pth`` line (which
does not bring the checkout's editable install along), so this takes seconds."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from cli_support import ROOT

from distributed.cli.exitcodes import EXIT_OK


def _run(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done.stdout + done.stderr


def _fresh_venv(tmp: Path) -> Path:
    venv = tmp / "venv"
    _run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp)
    python = venv / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                   cwd=tmp).strip()  # fmt: skip
    (Path(purelib) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return venv


def test_the_demo_runs_from_a_wheel_installed_into_a_fresh_virtualenv(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", wheels, ROOT, cwd=tmp_path)  # fmt: skip
    [wheel] = wheels.glob("flowloom-*.whl")
    venv = _fresh_venv(tmp_path)
    _run(sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install",
         "--no-deps", "--no-index", "-q", wheel, cwd=tmp_path)  # fmt: skip
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "OPENAI_API_KEY")}
    where = _run(venv / "bin" / "python", "-c", "import distributed; print(distributed.__file__)",
                 cwd=elsewhere, env=env)  # fmt: skip
    assert str(venv) in where and str(ROOT) not in where  # the wheel, not the checkout
    done = subprocess.run(
        [str(venv / "bin" / "flowloom"), "demo", "customer-review", "negative"],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr
    assert "LLM provider: offline" in done.stdout
    assert "store leveldb://./flowloom-data" in done.stderr
    assert (elsewhere / "flowloom-data").is_dir()  # kept where the banner says
