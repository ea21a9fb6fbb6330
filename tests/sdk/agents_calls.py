"""Agent frameworks on the Responses API (the OpenAI Agents SDK and pydantic-ai) against
promptd's /v1/responses door, one scenario per run.

Usage: python agents_calls.py SCENARIO ARG_JSON. ARG_JSON has "base_url" (TCP, with the key
of promptd's listener from PROMPTD_TCP_KEY) or "socket" (the Unix socket, through httpx's uds
transport), and "text", the user's message. Prints one JSON object; any exception fails the
run (exit 1, traceback on stderr).

Nothing here may reach the network: the Agents SDK's tracing is off (in code and by
OPENAI_AGENTS_DISABLE_TRACING, which the test also sets), pydantic-ai has no logfire
configured and its price updater is never started.
"""

import asyncio
import json
import os
import sys

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
os.environ.setdefault("PYDANTIC_AI_NO_BANNER", "1")

import httpx  # noqa: E402
from openai import AsyncOpenAI  # noqa: E402

# The tool both frameworks are given; the fake provider calls it with the fixtures' arguments
# ({"city": "Paris", "unit": "c"}).
TOOL_RESULT = "18 degrees and sunny"
CALLS = []


def get_weather(city: str, unit: str) -> str:
    """The weather in a city.

    Args:
        city: The city.
        unit: "c" or "f".
    """
    CALLS.append({"city": city, "unit": unit})
    return f"{TOOL_RESULT} in {city} ({unit})"


def client(arg):
    if "socket" in arg:
        transport = httpx.AsyncHTTPTransport(uds=arg["socket"])
        return AsyncOpenAI(
            base_url="http://localhost/v1",
            api_key="unused",
            http_client=httpx.AsyncClient(transport=transport),
        )
    return AsyncOpenAI(base_url=arg["base_url"], api_key=os.environ["PROMPTD_TCP_KEY"])


# ---- The OpenAI Agents SDK ----


def agents_setup(arg):
    from agents import (
        Agent,
        function_tool,
        set_default_openai_api,
        set_default_openai_client,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    set_default_openai_client(client(arg), use_for_tracing=False)
    set_default_openai_api("responses")
    return Agent(
        name="Weather",
        instructions="Answer with the weather tool.",
        model="gpt-4o-mini",
        tools=[function_tool(get_weather)],
    )


def agents_run(arg):
    """A default Agent (OpenAIResponsesModel) with a function tool, run with run_sync."""
    from agents import Runner

    agent = agents_setup(arg)
    result = Runner.run_sync(agent, arg["text"])
    return {
        "final_output": result.final_output,
        "tool_calls": CALLS,
        "items": [item.type for item in result.new_items],
        # A Responses API answer's id (resp_...), one per model call.
        "response_ids": [r.response_id for r in result.raw_responses],
    }


def agents_stream(arg):
    """The same with Runner.run_streamed: the text deltas as they come, then the final
    output."""
    from agents import Runner

    agent = agents_setup(arg)

    async def go():
        result = Runner.run_streamed(agent, arg["text"])
        deltas = []
        kinds = []
        async for event in result.stream_events():
            kinds.append(event.type)
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                deltas.append(event.data.delta)
        return result, deltas, kinds

    result, deltas, kinds = asyncio.run(go())
    return {
        "final_output": result.final_output,
        "streamed": "".join(deltas),
        "tool_calls": CALLS,
        "items": [item.type for item in result.new_items],
        "completed": result.is_complete,
        "run_item_events": sum(1 for k in kinds if k == "run_item_stream_event"),
    }


# ---- pydantic-ai ----


def pydantic_agent(arg, tools):
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIResponsesModel
    from pydantic_ai.providers.openai import OpenAIProvider

    if "socket" in arg:
        provider = OpenAIProvider(openai_client=client(arg))
    else:
        provider = OpenAIProvider(base_url=arg["base_url"], api_key=os.environ["PROMPTD_TCP_KEY"])
    model = OpenAIResponsesModel("gpt-4o-mini", provider=provider)
    return Agent(model, instructions="Be brief.", tools=tools)


def pydantic_messages(result):
    """The message history, as part kinds per message."""
    return [[part.part_kind for part in m.parts] for m in result.all_messages()]


def pydantic_plain(arg):
    result = pydantic_agent(arg, []).run_sync(arg["text"])
    return {
        "output": result.output,
        "messages": pydantic_messages(result),
        "input_tokens": result.usage().input_tokens,
        "output_tokens": result.usage().output_tokens,
    }


def pydantic_tool(arg):
    result = pydantic_agent(arg, [get_weather]).run_sync(arg["text"])
    return {
        "output": result.output,
        "tool_calls": CALLS,
        "messages": pydantic_messages(result),
        "requests": result.usage().requests,
    }


def pydantic_stream(arg):
    """run_stream with a tool: the tool round then the text, streamed."""
    agent = pydantic_agent(arg, [get_weather])

    async def go():
        async with agent.run_stream(arg["text"]) as result:
            pieces = [piece async for piece in result.stream_text(delta=True)]
            return result, pieces

    result, pieces = asyncio.run(go())
    return {
        "streamed": "".join(pieces),
        "tool_calls": CALLS,
        "messages": pydantic_messages(result),
    }


SCENARIOS = {
    f.__name__: f
    for f in (agents_run, agents_stream, pydantic_plain, pydantic_tool, pydantic_stream)
}

if __name__ == "__main__":
    scenario, arg = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(SCENARIOS[scenario](arg)))
