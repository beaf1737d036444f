"""``OfflineProvider``: deterministic, rule-based answers with no network.

It is not a language model and never claims to be one: its provider name is ``offline`` and
its model name ``offline-rules``. Each rule recognises one kind of prompt by its wording
(the four example use cases: blog post, job application, customer review, content
moderation) and answers from the text the prompt carries, with small keyword lists and a
PII regex. Anything it does not recognise gets a short, clearly labelled echo.

It streams too (``stream``): the same answer in chunks of ``words_per_chunk`` words (with the
whitespace after them, so the chunks join into the answer exactly), ``chunk_delay`` seconds
apart (default 0: the chunks come at once, which is what tests want; a demo sets a small delay
to look like a model typing).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator, Sequence

from orchestration.providers.base import Completion, Message, TokenSink, prompt_text

__all__ = ["OfflineProvider", "chunks_of", "contains_pii", "offline_answer", "redact_pii"]

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_EMAIL_AT_RUN_START = re.compile(rf"(?<![\w.+-]){_EMAIL.pattern}")
"""``_EMAIL`` where a run of address characters starts (see ``_emails``)."""
_OTHER_PII_PATTERNS = (
    re.compile(r"(?<!\w)\+?\d[\d\s().-]{7,}\d"),  # a phone number
    re.compile(  # a street address
        r"\b\d{1,5}\s+(?:[A-Z][a-z]+\s+){1,3}(?:Street|St|Avenue|Ave|Road|Rd|Lane|Ln|Boulevard|Blvd|Drive|Dr)\b\.?"
    ),
)
_REDACTED = "[REDACTED]"

SPAM_WORDS = (
    "buy now",
    "click here",
    "free",
    "limited offer",
    "limited time",
    "discount",
    "winner",
    "cheap",
    "promo",
    "earn $",
    "make money",
    "act now",
    "http://",
    "https://",
    "www.",
    "% off",
)
HATE_SEVERE = ("kill", "exterminate", "subhuman", "should die", "vermin")
HATE_MODERATE = ("hate", "idiot", "stupid", "disgusting", "moron", "loser")
POSITIVE_WORDS = (
    "love",
    "great",
    "excellent",
    "amazing",
    "fantastic",
    "happy",
    "recommend",
    "awesome",
    "wonderful",
    "perfect",
    "easy",
    "helpful",
    "best",
    "enjoy",
    "delighted",
    "impressed",
)
NEGATIVE_WORDS = (
    "broken",
    "crash",
    "bug",
    "terrible",
    "slow",
    "disappoint",
    "refund",
    "doesn't work",
    "does not work",
    "bad",
    "worst",
    "awful",
    "frustrat",
    "error",
    "fail",
    "problem",
    "poor",
    "unusable",
    "annoying",
    "hate",
)
KNOWN_SKILLS = (
    "TypeScript",
    "JavaScript",
    "Node.js",
    "SQL",
    "PostgreSQL",
    "MySQL",
    "Python",
    "React",
    "Vue",
    "Go",
    "Java",
    "Rust",
    "Docker",
    "Kubernetes",
    "AWS",
    "GraphQL",
    "Redis",
    "Kafka",
    "HTML",
    "CSS",
    "C++",
    "Git",
    "Terraform",
    "Django",
    "Flask",
)
CASUAL_WORDS = ("hey", "gonna", "wanna", "lol", "dude", "!!", "yo ", "cool", "stuff")
RUDE_WORDS = ("whatever", "don't care", "boring", "sucks", "damn")
BUG_WORDS = ("crash", "bug", "error", "broken", "doesn't work", "does not work", "fails", "freez")
FEATURE_WORDS = ("wish", "would love", "please add", "feature", "could you add", "it would be nice")


def contains_pii(text: str) -> bool:
    """Whether ``text`` holds an email address, a phone number or a street address."""
    if _EMAIL_AT_RUN_START.search(text) is not None:
        return True
    return any(pattern.search(text) for pattern in _OTHER_PII_PATTERNS)


def redact_pii(text: str) -> str:
    """``text`` with every PII match replaced by ``[REDACTED]``."""
    pieces, shown_from = [], 0
    for email in _emails(text):
        pieces += [text[shown_from : email.start()], _REDACTED]
        shown_from = email.end()
    text = "".join([*pieces, text[shown_from:]])
    for pattern in _OTHER_PII_PATTERNS:
        text = pattern.sub(_REDACTED, text)
    return text


def _emails(text: str) -> Iterator[re.Match[str]]:
    """The matches of ``_EMAIL.finditer(text)``, found in linear time.

    ``finditer`` tries the pattern at every position, and from each one scans the whole run of
    address characters that follows: a long run without an ``@`` (a post of 64 KiB of letters)
    took quadratic time, minutes of blocked event loop. Only two positions can start the next
    match: where the previous one ended, and the first character of a run (a match from inside
    a run would have matched from its first character already).
    """
    found = _EMAIL_AT_RUN_START.search(text)
    while found is not None:
        yield found
        end = found.end()
        found = _EMAIL.match(text, end) or _EMAIL_AT_RUN_START.search(text, end)


def _has(text: str, words: Sequence[str]) -> int:
    lowered = text.lower()
    return sum(1 for word in words if word.lower() in lowered)


def _payload(prompt: str) -> str:
    """The text a prompt carries: after its last blank line, without a ``Label:`` and quotes."""
    tail = prompt.rsplit("\n\n", 1)[-1].strip()
    tail = re.sub(r"^[A-Z][\w ]{0,30}:\s*", "", tail)
    return tail.strip().strip('"').strip()


def _after(prompt: str, marker: str) -> str:
    """The text after ``marker`` (to the end), trimmed of quotes and a final dot."""
    index = prompt.lower().find(marker.lower())
    if index < 0:
        return ""
    return prompt[index + len(marker) :].strip().strip("'\".").strip()


def _quoted(prompt: str, after: str = "") -> str:
    start = prompt.lower().find(after.lower()) if after else 0
    match = re.search(r"[\"']([^\"']+)[\"']", prompt[max(start, 0) :])
    return match.group(1).strip().rstrip(".") if match else ""


def _field(prompt: str, label: str) -> str:
    match = re.search(rf"{label}\s*:\s*['\"]?([^'\"\n]*)", prompt, re.IGNORECASE)
    return match.group(1).strip() if match else ""


def _first_sentence(text: str) -> str:
    match = re.match(r"(.+?[.!?])(\s|$)", text.strip(), re.DOTALL)
    return (match.group(1) if match else text.strip()).strip()


# -- conditions (answer "true" / "false") --------------------------------------------------


def _qualified(prompt: str) -> bool:
    ticks = re.findall(r"`([^`]*)`", prompt)
    if len(ticks) < 3:
        return False
    skills, required, tone = ticks[0].lower(), ticks[1], ticks[2].strip().lower()
    needed = [s.strip().lower() for s in required.split(",") if s.strip()]
    return all(s in skills for s in needed) and tone.startswith("professional")


def _condition(prompt: str) -> str:
    lowered = prompt.lower()
    if "required skills" in lowered:
        verdict = _qualified(prompt)
    elif "personally identifiable" in lowered or "pii" in lowered:
        verdict = contains_pii(_payload(prompt))
    elif "spam" in lowered:
        verdict = _has(_payload(prompt), SPAM_WORDS) > 0
    elif "sentiment" in lowered or "positive" in lowered:
        verdict = _has(prompt, POSITIVE_WORDS) > _has(prompt, NEGATIVE_WORDS)
    else:
        verdict = False
    return "true" if verdict else "false"


def _asks_true_false(prompt: str) -> bool:
    lowered = prompt.lower()
    return ("'true'" in lowered and "'false'" in lowered) or '"true"' in lowered


# -- routers ---------------------------------------------------------------------------------


def _triage(prompt: str) -> str:
    hate = _field(prompt, "Hate Speech Level").lower()
    pii = _field(prompt, "PII Found").lower()
    spam = _field(prompt, "Spam Detected").lower()
    if hate.startswith("severe"):
        return "action_ban"
    if pii.startswith("true"):
        return "action_redact"
    if spam.startswith("true"):
        return "action_delete_spam"
    return "action_approve"


# -- process prompts -----------------------------------------------------------------------


def _hate_level(prompt: str) -> str:
    text = _payload(prompt)
    if _has(text, HATE_SEVERE):
        return "severe"
    return "moderate" if _has(text, HATE_MODERATE) else "none"


def _outline(prompt: str) -> str:
    topic = _quoted(prompt, "topic") or _payload(prompt)
    points = ("Why it matters", "Core ideas", "A worked example", "Common pitfalls", "Next steps")
    lines = [f"Outline: {topic}"] + [f"{i}. {point}" for i, point in enumerate(points, 1)]
    return "\n".join(lines)


def _draft(prompt: str) -> str:
    outline = _after(prompt, "following outline:") or _payload(prompt)
    topic = _field(outline, "Outline") or "the topic"
    sections = re.findall(r"^\d+\.\s*(.+)$", outline, re.MULTILINE)
    body = [f"# {topic}", "", f"This post walks through {topic}, one idea at a time."]
    for section in sections:
        body += ["", f"## {section}", f"A short section on {section.lower()} for {topic}."]
    return "\n".join(body)


def _titles(prompt: str) -> str:
    match = re.search(r"^#\s*(.+)$", prompt, re.MULTILINE)
    topic = match.group(1).strip() if match else "This Topic"
    patterns = (
        "{t}: A Practical Guide",
        "Everything You Need to Know About {t}",
        "{t} in 5 Steps",
        "Why {t} Matters Now",
        "Getting Started with {t}",
    )
    return "\n".join(f"{i}. {p.format(t=topic)}" for i, p in enumerate(patterns, 1))


def _skills(prompt: str) -> str:
    text = _payload(prompt)
    found = [s for s in KNOWN_SKILLS if re.search(rf"(?<![\w.]){re.escape(s)}(?![\w])", text)]
    return ", ".join(found) if found else "none found"


def _tone(prompt: str) -> str:
    text = _payload(prompt)
    if _has(text, RUDE_WORDS):
        return "unprofessional"
    return "casual" if _has(text, CASUAL_WORDS) else "professional"


def _interview_email(prompt: str) -> str:
    name = re.search(r"inviting (.+?) to an interview", prompt)
    who = name.group(1).strip() if name else "there"
    return (
        f"Dear {who},\n\nThank you for applying. We were impressed with your resume and would "
        "like to invite you to an interview. Please reply with a few times that suit you.\n\n"
        "Kind regards,\nThe Hiring Team"
    )


def _rejection_email(prompt: str) -> str:
    name = re.search(r"(?:email to|to) (.+?) (?:informing|to tell|letting)", prompt)
    who = name.group(1).strip() if name else "there"
    return (
        f"Dear {who},\n\nThank you for your interest in the role. After careful review, we will "
        "not be moving forward with your application at this time. We wish you every success.\n\n"
        "Kind regards,\nThe Hiring Team"
    )


def _summary(prompt: str) -> str:
    text = _after(prompt, "in one sentence:") or _payload(prompt)
    return _first_sentence(text)


def _category(prompt: str) -> str:
    text = _after(prompt, "Review:") or _payload(prompt)
    if _has(text, BUG_WORDS):
        return "Bug Report"
    return "Feature Request" if _has(text, FEATURE_WORDS) else "General Feedback"


def _ticket(prompt: str) -> str:
    title = _field(prompt, "Title") or "Customer Feedback"
    described = re.search(r"Description:\s*'(.*)'", prompt)
    description = described.group(1) if described else "See the customer's feedback."
    return json.dumps({"title": title, "description": description})


def _thanks(prompt: str) -> str:
    highlight = _quoted(prompt, "highlighting") or "your feedback"
    return (
        "Hi,\n\nThank you so much for your kind words! We really appreciate you highlighting: "
        f'"{highlight}". Feedback like yours keeps the team going.\n\nBest wishes,\nCustomer Care'
    )


def _reassurance(prompt: str) -> str:
    subject = _quoted(prompt, "feedback") or "your recent experience"
    return (
        "Hi,\n\nThank you for getting in touch. We have received your feedback regarding "
        f'"{subject}" and created a ticket so the team can look into it. We will keep you '
        "posted.\n\nBest regards,\nCustomer Care"
    )


def _simulation(prompt: str) -> str:
    what = re.search(r"---\s*SIMULATING (.+?)\s*---", prompt)
    details = prompt.split("---", 2)[-1].strip()
    return f"[simulated {what.group(1).lower() if what else 'call'}] ok\n{details}"


def _redaction(prompt: str) -> str:
    return redact_pii(_payload(prompt))


def _warning(prompt: str) -> str:
    user = re.search(r"user (\S+?) explaining", prompt)
    who = user.group(1) if user else "there"
    return (
        f"Hello {who}, your post was edited to remove personal information. For your safety, "
        "please do not share emails, phone numbers or addresses in public posts. Thank you."
    )


def _ban_sql(prompt: str) -> str:
    match = re.search(r"UPDATE .+?;", prompt)
    return match.group(0) if match else "UPDATE users SET status='banned';"


def _log_entry(prompt: str) -> str:
    return "[security-log] " + " | ".join(prompt.rsplit("\n\n", 1)[-1].strip().splitlines())


def _spam_summary(prompt: str) -> str:
    user = re.search(r"user ID (\S+?)\.?$", prompt, re.MULTILINE)
    who = user.group(1).rstrip(".") if user else "unknown"
    return f"Deleted the spam post and flagged user {who} for review."


def _approval(prompt: str) -> str:
    user = re.search(r"from (\S+) was", prompt)
    return f"Post from {user.group(1) if user else 'the user'} approved: no issues found."


def _echo(prompt: str) -> str:
    return f"[offline] {_first_sentence(prompt)[:200]}"


Rule = tuple[Callable[[str], bool], Callable[[str], str]]


def _contains(*words: str) -> Callable[[str], bool]:
    return lambda prompt: all(word.lower() in prompt.lower() for word in words)


RULES: tuple[Rule, ...] = (
    (_contains("action_ban", "action_approve"), _triage),
    (_asks_true_false, _condition),
    (_contains("hate speech", "severity"), _hate_level),
    (_contains("following outline"), _draft),
    (_contains("titles"), _titles),
    (_contains("outline", "topic"), _outline),
    (_contains("technical skills"), _skills),
    (_contains("tone", "cover letter"), _tone),
    (_contains("to an interview"), _interview_email),
    (_contains("not be moving forward"), _rejection_email),
    (_contains("--- simulating"), _simulation),
    (_contains("ticket", "json"), _ticket),
    (_contains("thank you", "positive feedback"), _thanks),
    (_contains("received their feedback"), _reassurance),
    (_contains("summarize", "review"), _summary),
    (_contains("categorize", "review"), _category),
    (_contains("[redacted]"), _redaction),
    (_contains("warning message"), _warning),
    (_contains("ban a user"), _ban_sql),
    (_contains("security log"), _log_entry),
    (_contains("spam post"), _spam_summary),
    (_contains("approved"), _approval),
)


def offline_answer(prompt: str) -> str:
    """The rule-based answer to ``prompt``."""
    for matches, answer in RULES:
        if matches(prompt):
            return answer(prompt)
    return _echo(prompt)


def chunks_of(text: str, words: int = 3) -> list[str]:
    """``text`` in chunks of ``words`` words, each with the whitespace that follows it (the
    first also with any leading whitespace): ``"".join(chunks_of(text)) == text``."""
    if not text:
        return []
    pieces = re.findall(r"\s*\S+\s*", text) or [text]  # all whitespace: one chunk
    return ["".join(pieces[i : i + words]) for i in range(0, len(pieces), words)]


class OfflineProvider:
    """Deterministic rule-based provider (no network). Name ``offline``, model ``offline-rules``.

    ``stream`` hands the answer over in chunks of ``words_per_chunk`` words, ``chunk_delay``
    seconds apart."""

    name = "offline"
    model = "offline-rules"

    def __init__(self, *, chunk_delay: float = 0.0, words_per_chunk: int = 3) -> None:
        if chunk_delay < 0 or words_per_chunk < 1:
            raise ValueError("chunk_delay must be >= 0 and words_per_chunk >= 1")
        self.chunk_delay = chunk_delay
        self.words_per_chunk = words_per_chunk

    async def complete(
        self,
        messages: Sequence[Message],
        *,
        model: str = "",
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """Answer the last user message by rule; ``model`` is ignored (always offline-rules)."""
        return Completion(offline_answer(prompt_text(messages)), self.model, self.name)

    async def stream(
        self,
        messages: Sequence[Message],
        *,
        model: str = "",
        on_token: TokenSink,
        temperature: float | None = None,
        timeout: float | None = None,
    ) -> Completion:
        """The same answer as ``complete``, handed to ``on_token`` chunk by chunk."""
        completion = await self.complete(messages, model=model)
        for index, chunk in enumerate(chunks_of(completion.text, self.words_per_chunk)):
            if index:
                await asyncio.sleep(self.chunk_delay)  # 0: still lets other tasks run
            on_token(chunk)
        return completion
