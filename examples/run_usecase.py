"""Run one of the example use cases locally and print the result.

    python examples/run_usecase.py job-application               # inputs.json, offline provider
    python examples/run_usecase.py content-moderation spam       # scenarios/spam.json
    python examples/run_usecase.py blog-post --openai            # OPENAI_API_KEY / OPENAI_BASE_URL

The offline provider is rule-based and deterministic; its answers are labelled "offline".
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestration import Engine, OpenAIProvider, format_result

HERE = Path(__file__).resolve().parent
MAIN_BLUEPRINT = {
    "blog-post": "100",
    "job-application": "200",
    "customer-review": "300",
    "content-moderation": "400",
}


async def main(use_case: str, scenario: str | None, online: bool) -> int:
    folder = HERE / use_case
    engine = Engine(provider=OpenAIProvider() if online else None)
    engine.load_blueprints(folder / "blueprints")
    inputs_file = folder / "scenarios" / f"{scenario}.json" if scenario else folder / "inputs.json"
    inputs = json.loads(inputs_file.read_text(encoding="utf-8"))
    result = await engine.execute(MAIN_BLUEPRINT[use_case], inputs)
    print(format_result(result, engine.graph(result.workflow_id)))
    return 0 if result.ok else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("use_case", choices=sorted(MAIN_BLUEPRINT))
    parser.add_argument("scenario", nargs="?", help="a file name of scenarios/ without .json")
    parser.add_argument("--openai", action="store_true", help="use OpenAIProvider")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.use_case, args.scenario, args.openai)))
