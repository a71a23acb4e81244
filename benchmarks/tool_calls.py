"""Tool-call reliability of the local model through `MMChatModel`, with and without constrained decoding.

24 requests that each call for one of three tools (get_weather(city), lookup_order(order_id: int),
create_ticket(subject, priority: low|normal|high)). For each condition we count answers that
- call a tool at all,
- call it validly: parsed, a bound tool's name, arguments valid against its JSON schema,
- pick the expected tool.

    python benchmarks/tool_calls.py                 # embedded default model, Markdown table
    python benchmarks/tool_calls.py --model PATH --limit 6 --json
    python benchmarks/tool_calls.py --model embedded:qwen2.5-coder-0.5b --conditions constrained

`route` says how the calls were decided: "template" (the model's own tool template and `<tool_call>`
tokens: it decides under auto, only the call is grammar-constrained) or "grammar" (a model without
those tokens: the grammar's first character decides).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from typing import Literal

REQUESTS = [
    ("What's the weather in Paris right now?", "get_weather"),
    ("Is it raining in London?", "get_weather"),
    ("Tell me the weather for Tokyo.", "get_weather"),
    ("How hot is it in Cairo today?", "get_weather"),
    ("Weather forecast for Berlin please.", "get_weather"),
    ("Do I need an umbrella in Seattle?", "get_weather"),
    ("What is the temperature in Madrid?", "get_weather"),
    ("Check the weather in Sydney.", "get_weather"),
    ("Where is my order 1234?", "lookup_order"),
    ("Look up order number 98765.", "lookup_order"),
    ("What's the status of order 42?", "lookup_order"),
    ("Has order 5521 shipped yet?", "lookup_order"),
    ("Can you find order #777 for me?", "lookup_order"),
    ("I want to track my order 31415.", "lookup_order"),
    ("Order 2024 hasn't arrived, can you check it?", "lookup_order"),
    ("Give me details on order 8.", "lookup_order"),
    ("Open a ticket: my laptop screen is broken, it's urgent.", "create_ticket"),
    ("Please create a low priority ticket about a typo on the website.", "create_ticket"),
    ("File a support ticket: I can't log in. High priority.", "create_ticket"),
    ("Create a ticket saying the printer is out of toner.", "create_ticket"),
    ("My refund never came. Make a ticket for it, normal priority.", "create_ticket"),
    ("Raise a ticket: the app crashes on start, high priority.", "create_ticket"),
    ("Submit a ticket about slow wifi in the office.", "create_ticket"),
    ("Create a high priority ticket: server room is overheating.", "create_ticket"),
]


def tools() -> list:
    from langchain_core.tools import tool

    @tool
    def get_weather(city: str) -> str:
        """Current weather for a city."""
        return "sunny"

    @tool
    def lookup_order(order_id: int) -> str:
        """Status of a customer order by its numeric id."""
        return "shipped"

    @tool
    def create_ticket(subject: str, priority: Literal["low", "normal", "high"]) -> str:
        """Open a support ticket with a subject and a priority."""
        return "ticket 1"

    return [get_weather, lookup_order, create_ticket]


@dataclass
class Score:
    condition: str
    requests: int = 0
    called: int = 0
    valid: int = 0
    right_tool: int = 0
    seconds: float = 0.0
    route: str = ""


def run(model, condition: str, constrain: bool, tool_choice: str | None, limit: int,
        requests: list[tuple[str, str]] = REQUESTS) -> Score:
    import jsonschema
    from langchain_core.utils.function_calling import convert_to_openai_tool

    bound_tools = tools()
    schemas = {t.name: convert_to_openai_tool(t)["function"]["parameters"] for t in bound_tools}
    bound = model.model_copy(update={"constrain_tool_calls": constrain}).bind_tools(bound_tools, tool_choice=tool_choice)
    score = Score(condition)
    started = time.perf_counter()
    for prompt, expected in requests[:limit]:
        answer = bound.invoke(prompt)
        score.requests += 1
        score.route = answer.response_metadata.get("tool_calling", "")
        calls = answer.tool_calls
        score.called += bool(calls or answer.invalid_tool_calls)
        if calls and not answer.invalid_tool_calls:
            try:
                for call in calls:
                    jsonschema.validate(call["args"], schemas[call["name"]])
                score.valid += 1
                score.right_tool += calls[0]["name"] == expected
            except jsonschema.ValidationError:
                pass
        names = [c["name"] for c in calls] or ["-"]
        print(f"{condition}: {prompt!r} -> {','.join(names)} (expected {expected})", file=sys.stderr, flush=True)
    score.seconds = time.perf_counter() - started
    return score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model.id (default: the embedded model)")
    parser.add_argument("--limit", type=int, default=len(REQUESTS))
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--conditions", choices=["all", "constrained", "free"], default="all",
                        help="which decoding conditions to run (each runs auto and any)")
    parser.add_argument("--choice", choices=["both", "auto", "any"], default="both", help="tool_choice conditions to run")
    parser.add_argument("--start", type=int, default=0, help="first request (with --stride: a spread sample on slow machines)")
    parser.add_argument("--stride", type=int, default=1, help="take every N-th request from --start")
    args = parser.parse_args()
    requests = REQUESTS[args.start::args.stride]
    from mmagent.orchestration.chat_model import MMChatModel

    model = MMChatModel(model_id=args.model, max_tokens=args.max_tokens)
    conditions = [("free, tool_choice=auto", False, None), ("constrained, tool_choice=auto", True, None),
                  ("free, tool_choice=any", False, "any"), ("constrained, tool_choice=any", True, "any")]
    conditions = [c for c in conditions if args.conditions == "all" or c[0].startswith(args.conditions)]
    conditions = [c for c in conditions if args.choice == "both" or c[0].endswith(args.choice)]
    scores = [run(model, name, constrain, choice, args.limit, requests) for name, constrain, choice in conditions]
    if args.json:
        print(json.dumps([asdict(s) for s in scores], indent=2))
        return
    print(f"model: {model.model_id}, {scores[0].requests} requests, greedy, max {args.max_tokens} new tokens\n")
    print("| condition | route | called a tool | valid call | expected tool | s/request |")
    print("|---|---|---|---|---|---|")
    for s in scores:
        cells = [f"{n}/{s.requests} ({100 * n / s.requests:.0f}%)" for n in (s.called, s.valid, s.right_tool)]
        print(f"| {s.condition} | {s.route} | {' | '.join(cells)} | {s.seconds / s.requests:.1f} |")


if __name__ == "__main__":
    main()
