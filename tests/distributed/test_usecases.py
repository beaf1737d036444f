"""The four reference use cases give the same status and final output in memory and distributed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from distributed import Runtime
from orchestration import Engine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MAIN = {
    "blog-post": "100",
    "job-application": "200",
    "customer-review": "300",
    "content-moderation": "400",
}
CASES = [
    (use_case, scenario.stem)
    for use_case in sorted(MAIN)
    for scenario in [
        EXAMPLES / use_case / "inputs.json",
        *sorted((EXAMPLES / use_case).glob("scenarios/*.json")),
    ]
]


@pytest.mark.parametrize(("use_case", "scenario"), CASES, ids=[f"{u}-{s}" for u, s in CASES])
async def test_a_use_case_ends_the_same_in_memory_and_distributed(
    runtime: Runtime, engine: Engine, use_case: str, scenario: str
) -> None:
    engine.load_blueprints(EXAMPLES / use_case / "blueprints")
    folder = EXAMPLES / use_case
    file = (
        folder / "inputs.json"
        if scenario == "inputs"
        else folder / "scenarios" / f"{scenario}.json"
    )
    inputs = json.loads(file.read_text(encoding="utf-8"))

    local = await engine.execute(MAIN[use_case], inputs)
    distributed = await runtime.engine.execute_sync(MAIN[use_case], inputs, timeout=60)

    assert local.status == "completed", local.error
    assert distributed.status == local.status
    assert distributed.outputs == local.outputs
    assert set(distributed.completed_steps) == set(local.route)


async def test_the_job_application_result_reads_as_the_email_not_a_dict(
    runtime: Runtime, engine: Engine
) -> None:
    engine.load_blueprints(EXAMPLES / "job-application" / "blueprints")
    inputs = json.loads((EXAMPLES / "job-application" / "inputs.json").read_text(encoding="utf-8"))
    snapshot = await runtime.engine.execute_sync("200", inputs, timeout=60)
    final = next(iter(snapshot.outputs.values()))
    assert isinstance(final, str)
    assert "Dear" in final and "{" not in final
