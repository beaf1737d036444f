"""A user's mistake is one line on stderr and a documented exit code, never a traceback."""

from __future__ import annotations

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from cli_support import ROOT, base_env, cli, eventually, log_text, spawn
from cli_support import processes as processes  # the fixture

from distributed.cli.exitcodes import EXIT_FAILED, EXIT_UNAVAILABLE, EXIT_USAGE

BLOG = str(ROOT / "examples" / "blog-post" / "blueprints")
TOPIC = '{"topic": "durable workflows"}'

BAD_INPUTS = [
    # (case, argv, exit code, what the one line says)
    ("malformed blueprint", ["run", "x", "--blueprints", "{bad}", "--input", "{}"],
     EXIT_USAGE, "blueprint 'x' has 2 problems: nodes.0.uses: Field required"),
    ("unknown workflow", ["run", "nope", "--blueprints", BLOG, "--input", "{}"],
     EXIT_USAGE, "unknown workflow 'nope'; known workflows: 100"),
    ("invalid --input JSON", ["run", "100", "--blueprints", BLOG, "--input", "{topic"],
     EXIT_USAGE, "--input is not valid JSON"),
    ("a JSON list as inputs", ["run", "100", "--blueprints", BLOG, "--input", "[1, 2]"],
     EXIT_USAGE, "--input must be a JSON object"),
    ("missing inputs file", ["run", "100", "--blueprints", BLOG, "--input", "@nope.json"],
     EXIT_USAGE, "input file 'nope.json' does not exist"),
    ("inputs the templates need", ["run", "100", "--blueprints", BLOG],
     EXIT_USAGE, "workflow '100' needs inputs that were not given: topic"),
    ("nonexistent blueprints folder", ["run", "100", "--blueprints", "no/such/dir"],
     EXIT_USAGE, "blueprints folder 'no/such/dir' does not exist"),
    ("--workers -1", ["run", "100", "--blueprints", BLOG, "--workers", "-1"],
     EXIT_USAGE, "argument --workers: must be 0 or more, got -1"),
    ("--timeout 0", ["run", "100", "--blueprints", BLOG, "--timeout", "0"],
     EXIT_USAGE, "argument --timeout: must be more than 0 seconds, got 0"),
    ("--provider openai without a key",
     ["run", "100", "--blueprints", BLOG, "--input", TOPIC, "--provider", "openai"],
     EXIT_USAGE, "OpenAIProvider needs an API key: set OPENAI_API_KEY"),
    ("missing demo scenario", ["demo", "job-application", "nope"],
     EXIT_USAGE, "use case 'job-application' has no scenario 'nope'; scenarios: not-qualified"),
    ("unknown demo use case", ["demo", "no-such-case"], EXIT_USAGE, "invalid choice"),
    ("unknown execution id", ["status", "nope", "--store", "memory://"],
     EXIT_USAGE, "no execution with id 'nope'"),
    ("Redis database not a number", ["status", "x", "--store", "redis://127.0.0.1/notadb"],
     EXIT_USAGE, "database 'notadb' is not a number"),
    ("unknown APP module", ["worker", "no_such_module:app"],
     EXIT_USAGE, "APP 'no_such_module:app': no module named 'no_such_module'"),
    ("APP of the wrong kind", ["worker", "cli_support:ROOT"],
     EXIT_USAGE, "it must be an Engine, a Workflow"),
    ("worker with nothing to run", ["worker"],
     EXIT_USAGE, "no workflows to run: give APP (module:object) or --blueprints DIR"),
    ("unreachable Redis",
     ["run", "100", "--blueprints", BLOG, "--input", TOPIC, "--store", "redis://127.0.0.1:1/0"],
     EXIT_UNAVAILABLE, "store redis://127.0.0.1:1/0 is unavailable"),
    ("unreachable Kafka",
     ["run", "100", "--blueprints", BLOG, "--input", TOPIC, "--store", "memory://",
      "--broker", "kafka://ada:hunter2@127.0.0.1:1?request_timeout_ms=1500"],
     EXIT_UNAVAILABLE, "unavailable"),
    ("kafka URL with an unknown parameter", ["list", "--broker", "kafka://h?passwd=hunter2"],
     EXIT_USAGE, "unknown parameter 'passwd'"),
    ("a bad FLOWLOOM_ variable", ["list", "--store", "memory://", "@env:FLOWLOOM_WORKERS=-1"],
     EXIT_USAGE, "workers: Input should be greater than or equal to 1 (got '-1') "
     "[from FLOWLOOM_WORKERS]"),
    ("validate finds problems", ["validate", "{bad}"], EXIT_FAILED, "nodes.0.uses: Field required"),
    ("an execution id with a slash", ["status", "a/b", "--store", "memory://"],
     EXIT_USAGE, "invalid execution id 'a/b': contains '/' (store keys use it as the separator)"),
    ("an execution id with a control character", ["cancel", "a\x01b", "--store", "memory://"],
     EXIT_USAGE, "invalid execution id 'a\\x01b': contains a control character (U+0001)"),
    ("an execution id that is not UTF-8", ["pause", "a\udcffb", "--store", "memory://"],
     EXIT_USAGE, "invalid execution id 'a\\udcffb': contains a lone surrogate (not UTF-8)"),
    ("an execution id too long", ["events", "x" * 4097, "--store", "memory://"],
     EXIT_USAGE, "is 4097 characters long, over the limit of 4096"),
    ("NaN in --input", ["run", "100", "--blueprints", BLOG, "--input", '{"topic": NaN}'],
     EXIT_USAGE, "inputs is not JSON: Out of range float values are not JSON compliant"),
    ("NaN in --payload", ["signal", "x", "go", "--payload", "NaN", "--store", "memory://"],
     EXIT_USAGE, "signal payload is not JSON: Out of range float values are not JSON compliant"),
    ("inputs over the size limit",
     ["run", "100", "--blueprints", BLOG, "--input", "@{bad}/../big.json"],
     EXIT_USAGE, "inputs of workflow '100' are 585.9 KiB (600012 bytes) as JSON, over the limit "
     "of 512 KiB set by max_inputs_bytes / FLOWLOOM_MAX_INPUTS_BYTES"),
]  # fmt: skip


def _argv_and_env(argv: list[str], bad: Path) -> tuple[list[str], dict[str, str]]:
    env = base_env()
    args = []
    for arg in argv:
        if arg.startswith("@env:"):
            name, _, value = arg[5:].partition("=")
            env[name] = value
        else:
            args.append(arg.replace("{bad}", str(bad)))
    return args, env


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CompletedProcess[str]]:
    """Every case of the table, run at once (each its own process)."""
    tmp = tmp_path_factory.mktemp("bad-inputs")
    bad = tmp / "bad"
    bad.mkdir()
    (bad / "x.json").write_text('{"nodes": [{"id": "a"}], "edges": [{"source": "a"}]}')
    (bad.parent / "big.json").write_text(json.dumps({"topic": "x" * 600_000}))

    def run(case: tuple[str, list[str], int, str]) -> CompletedProcess[str]:
        args, env = _argv_and_env(case[1], bad)
        # Each case in a folder of its own: several open the default store (./flowloom-data),
        # and the embedded LevelDB store admits one process at a time.
        cwd = tmp / f"case-{BAD_INPUTS.index(case)}"
        cwd.mkdir()
        return cli(*args, env=env, cwd=cwd)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip((c[0] for c in BAD_INPUTS), pool.map(run, BAD_INPUTS), strict=True))


@pytest.mark.parametrize(
    ("case", "code", "line"),
    [(c[0], c[2], c[3]) for c in BAD_INPUTS],
    ids=[c[0] for c in BAD_INPUTS],
)
def test_a_mistake_is_one_line_and_its_exit_code(
    case: str, code: int, line: str, outcomes: dict[str, CompletedProcess[str]]
) -> None:
    done = outcomes[case]
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert "hunter2" not in done.stderr + done.stdout
    lines = [entry for entry in done.stderr.splitlines() if entry.strip()]
    if code == EXIT_FAILED:  # validate: its findings are its output, on stdout
        assert line in done.stdout
        return
    assert len(lines) == 1, done.stderr
    assert line in lines[0]


def test_a_leveldb_directory_another_process_holds_is_one_line_and_exit_5(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    data, log = tmp_path / "data", tmp_path / "worker.log"
    holder = spawn("worker", "--blueprints", BLOG, "--data", str(data), env=base_env(), log=log)
    processes.append(holder)
    eventually(lambda: "worker started" in log_text(log), message="embedded worker started")
    done = cli("status", "x", "--data", str(data), cwd=tmp_path)
    assert done.returncode == EXIT_UNAVAILABLE
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert "is already open in another process" in line and "Redis" in line


def test_debug_shows_the_traceback_as_well(tmp_path: Path) -> None:
    done = cli("status", "nope", "--store", "memory://", "--debug", cwd=tmp_path)
    assert done.returncode == EXIT_USAGE
    assert "Traceback" in done.stderr
    assert done.stderr.rstrip().endswith("flowloom: no execution with id 'nope'")
