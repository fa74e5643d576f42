"""Drives MarginDash's own SDK (ai-cost-calc, unpatched) for tests/contracts/test_margindash_sdk.py.

Run by `vendor_sdks.run_driver` in a subprocess whose path starts with the vendor's package, never
under pytest: `python margindash_driver.py SCENARIO` with the scenario's arguments as JSON on stdin;
the last line of stdout is the JSON answer. The client gets only `base_url` and `api_key`.
"""

import asyncio
import dataclasses
import json
import sys

import ai_cost_calc
from ai_cost_calc import AiCostCalc


def _client(arguments: dict, errors: list) -> AiCostCalc:
    return AiCostCalc(
        api_key=arguments.get("api_key"),
        base_url=arguments["base_url"],
        on_error=lambda error: errors.append(error.message),
    )


def cost(arguments: dict, errors: list) -> dict:
    client = _client(arguments, errors)
    results = []
    for model, input_tokens, output_tokens in arguments["calls"]:
        result = client.cost(model, input_tokens=input_tokens, output_tokens=output_tokens)
        results.append(None if result is None else dataclasses.asdict(result))
    client.shutdown()
    return {"results": results}


def track(arguments: dict, errors: list) -> dict:
    client = _client(arguments, errors)
    for event in arguments["events"]:
        for usage in event["usages"]:
            client.add_usage(**usage)
        client.track(**event["track"])
    client.flush()
    client.shutdown()
    return {}


def guard(arguments: dict, errors: list) -> dict:
    client = _client(arguments, errors)
    outcomes = []
    for check in arguments["checks"]:
        try:
            outcome = client.guarded_call(call=lambda: "ran", **check)
        except RuntimeError as refused:
            outcome = f"blocked: {refused}"

        async def guarded(check=check):
            async def call():
                return "ran"

            try:
                return await client.async_guarded_call(call=call, **check)
            except RuntimeError as refused:
                return f"blocked: {refused}"

        outcomes.append([outcome, asyncio.run(guarded())])
    client.shutdown()
    return {"outcomes": outcomes}


def main() -> None:
    scenario = {"cost": cost, "track": track, "guard": guard}[sys.argv[1]]
    arguments = json.loads(sys.stdin.read())
    errors: list[str] = []
    answer = scenario(arguments, errors)
    answer.update(errors=errors, version=ai_cost_calc.__version__, module=ai_cost_calc.__file__)
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
