"""The four example use cases, in memory, on every branch."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from orchestration import Engine, OfflineProvider, ScriptedProvider, UnroutableAction

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# The reference blueprints, vendored unchanged (see PROVENANCE.md and LICENSE.md there).
REFERENCE = Path(__file__).resolve().parents[1] / "data" / "flowcraft-usecases"
MAIN = {
    "blog-post": "100",
    "job-application": "200",
    "customer-review": "300",
    "content-moderation": "400",
}


def _engine(provider: ScriptedProvider | None = None) -> Engine:
    engine = Engine(provider=provider)
    for use_case in MAIN:
        engine.load_blueprints(EXAMPLES / use_case / "blueprints")
    return engine


def _inputs(use_case: str, scenario: str | None = None) -> dict[str, object]:
    folder = EXAMPLES / use_case
    path = folder / "scenarios" / f"{scenario}.json" if scenario else folder / "inputs.json"
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _scripted(**answers: str) -> ScriptedProvider:
    return ScriptedProvider(by_node=answers, fallback=OfflineProvider())


async def test_the_blog_post_outlines_drafts_and_titles_the_topic() -> None:
    result = await _engine().execute("100", _inputs("blog-post"))
    assert result.status == "completed"
    assert result.route == ["generate_outline", "draft_post", "suggest_titles", "final_output"]
    text = result.outputs["final_output"]
    assert "=== TITLES ===" in text and "Durable workflows for AI agents" in text
    assert result.provider == "offline"


async def test_a_qualified_applicant_gets_the_interview_email_as_text() -> None:
    engine = _engine(_scripted(check_qualifications="true"))
    result = await engine.execute("200", _inputs("job-application"))
    assert result.status == "completed"
    assert result.steps["send_rejection_email"].status == "skipped"
    text = result.outputs["final_output"]
    assert text.startswith("Email sent to Ada Lovelace:")
    assert "invite you to an interview" in text and "{" not in text
    assert result.state["send_interview_email"] in text


async def test_an_unqualified_applicant_gets_the_rejection_email() -> None:
    engine = _engine(_scripted(check_qualifications="false"))
    result = await engine.execute("200", _inputs("job-application"))
    assert result.status == "completed"
    assert result.steps["send_interview_email"].status == "skipped"
    assert "not be moving forward" in result.outputs["final_output"]


async def test_the_offline_provider_screens_applicants_by_skills_and_tone() -> None:
    engine = _engine()
    qualified = await engine.execute("200", _inputs("job-application"))
    unqualified = await engine.execute("200", _inputs("job-application", "not-qualified"))
    assert qualified.steps["check_qualifications"].action == "true"
    assert unqualified.steps["check_qualifications"].action == "false"


async def test_a_positive_review_gets_a_thank_you_and_no_ticket() -> None:
    engine = _engine(_scripted(check_sentiment="true"))
    result = await engine.execute("300", _inputs("customer-review"))
    assert result.status == "completed"
    for skipped in ("negative_branch", "send_to_ticketing_system", "send_email_to_customer"):
        assert result.steps[skipped].status == "skipped"
    assert "Thank you" in result.outputs["final_output"]


async def test_a_negative_review_fires_the_join_once_with_both_actions() -> None:
    provider = _scripted(check_sentiment="false")
    result = await _engine(provider).execute("300", _inputs("customer-review", "negative"))
    assert result.status == "completed"
    assert result.route.count("final_step") == 1
    assert result.route.index("final_step") == len(result.route) - 1
    text = result.outputs["final_output"]
    assert "POST /api/tickets" in text and "To: customer@example.com" in text
    assert isinstance(result.state["generated_ticket"], str)
    assert result.steps["positive_branch"].status == "skipped"


@pytest.mark.parametrize(
    ("action", "branch", "expected"),
    [
        ("action_ban", "ban_user_branch", "User banned."),
        ("action_redact", "redact_post_branch", "[REDACTED]"),
        ("action_delete_spam", "delete_spam_branch", "spam post"),
        ("action_approve", "approve_post_branch", "approved"),
    ],
)
async def test_moderation_runs_exactly_the_routed_branch_then_logs_once(
    action: str, branch: str, expected: str
) -> None:
    provider = _scripted(triage_post=f"  '{action}'\n")
    result = await _engine(provider).execute("400", _inputs("content-moderation"))
    assert result.status == "completed"
    branches = [
        "ban_user_branch",
        "redact_post_branch",
        "delete_spam_branch",
        "approve_post_branch",
    ]
    ran = [b for b in branches if result.steps[b].status == "completed"]
    assert ran == [branch]
    assert result.route.count("final_log") == 1 and result.route[-1] == "final_log"
    assert expected in result.outputs["final_output"]


async def test_moderation_with_an_unknown_action_fails_naming_node_and_action() -> None:
    provider = _scripted(triage_post="action_escalate")
    result = await _engine(provider).execute("400", _inputs("content-moderation"))
    assert result.status == "failed"
    assert result.failed_step == "triage_post"
    assert result.error is not None and "action_escalate" in result.error
    assert UnroutableAction.__name__ in result.error
    assert result.steps["final_log"].status == "pending"


@pytest.mark.parametrize(
    ("scenario", "action"),
    [
        ("ban", "action_ban"),
        (None, "action_redact"),
        ("spam", "action_delete_spam"),
        ("approve", "action_approve"),
    ],
)
async def test_the_offline_provider_triages_each_example_post(
    scenario: str | None, action: str
) -> None:
    result = await _engine().execute("400", _inputs("content-moderation", scenario))
    assert result.status == "completed"
    assert result.steps["triage_post"].action == action


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def test_the_vendored_reference_blueprints_are_the_recorded_upstream_blobs() -> None:
    recorded = dict(
        re.findall(r"^\| (\S+\.json) \| ([0-9a-f]{40}) \|$", _provenance(), flags=re.MULTILINE)
    )
    present = {str(p.relative_to(REFERENCE)): p for p in sorted(REFERENCE.glob("*/*.json"))}
    assert len(recorded) == 11 and set(present) == set(recorded)
    for name, path in present.items():
        assert _git_blob_id(path.read_bytes()) == recorded[name], f"{name} was edited"
    assert "MIT License" in (REFERENCE / "LICENSE.md").read_text(encoding="utf-8")


def _provenance() -> str:
    return (REFERENCE / "PROVENANCE.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("folder", "blueprint", "inputs"),
    [
        ("1.blog-post", "100", {"topic": "Rust"}),
        (
            "2.job-application",
            "200",
            {
                "applicantName": "Ada",
                "resume": "TypeScript, Node.js, SQL",
                "coverLetter": "Dear team, I apply.",
            },
        ),
        ("3.customer-review", "300", {"initial_review": "Terrible, it crashes."}),
        ("4.content-moderation", "400", {"userId": "u1", "userPost": "mail a@b.example"}),
    ],
)
async def test_the_reference_blueprints_load_unchanged_and_complete(
    folder: str, blueprint: str, inputs: dict[str, str]
) -> None:
    engine = Engine()
    engine.load_blueprints(REFERENCE / folder)
    result = await engine.execute(blueprint, inputs)
    assert result.status == "completed", result.error
    assert result.outputs and all(isinstance(v, str) for v in result.outputs.values())
