"""Calls of the real Anthropic Python SDK against promptd's Anthropic Messages door.

Usage: python anthropic_calls.py ARG_JSON SCENARIO... ARG_JSON has "base_url" (TCP, e.g.
http://127.0.0.1:PORT; the SDK adds /v1/messages) or "socket" (the Unix socket), and "model".
Prints one JSON line per scenario, {"scenario": NAME, ...what the SDK returned}; a scenario
that raises prints {"scenario": NAME, "exception": {...}} and the next one runs (the test
names the failing scenario). Exit 0 unless the arguments are wrong.

The SDK (anthropic 2.x) speaks through httpx2, not httpx: over the socket it takes
`anthropic.DefaultHttpxClient(transport=httpx2.HTTPTransport(uds=SOCKET))` (an httpx object
is refused with a TypeError).
"""

import json
import os
import sys
import traceback

import anthropic
import httpx2

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
        "required": ["city"],
    },
}
SYSTEM = "Be brief."
MAX_TOKENS = 100


def client(arg):
    if "socket" in arg:
        transport = httpx2.HTTPTransport(uds=arg["socket"])
        return anthropic.Anthropic(
            base_url="http://localhost",
            api_key="unused",
            http_client=anthropic.DefaultHttpxClient(transport=transport),
            max_retries=0,
        )
    # Over TCP, the key of promptd's listener (tcp_key_env): the SDK sends it as x-api-key.
    return anthropic.Anthropic(
        base_url=arg["base_url"], api_key=os.environ["PROMPTD_TCP_KEY"], max_retries=0
    )


def user(text):
    return [{"role": "user", "content": text}]


def blocks(message):
    out = []
    for b in message.content:
        if b.type == "text":
            out.append({"type": "text", "text": b.text})
        elif b.type == "tool_use":
            out.append({"type": "tool_use", "id": b.id, "name": b.name, "input": b.input})
        else:
            out.append({"type": b.type})
    return out


def summary(message):
    return {
        "id": message.id,
        "type": message.type,
        "role": message.role,
        "model": message.model,
        "content": blocks(message),
        "stop_reason": message.stop_reason,
        "input_tokens": message.usage.input_tokens,
        "output_tokens": message.usage.output_tokens,
    }


def message(c, arg):
    """A whole message, system as a string."""
    m = c.messages.create(
        model=arg["model"], max_tokens=MAX_TOKENS, system=SYSTEM, messages=user("Hello")
    )
    return summary(m)


def stream(c, arg):
    """The stream helper (text_stream, final message), then the raw events of stream=True."""
    with c.messages.stream(
        model=arg["model"], max_tokens=MAX_TOKENS, system=SYSTEM, messages=user("Hello stream")
    ) as s:
        texts = list(s.text_stream)
        final = s.get_final_message()
    events = list(
        c.messages.create(
            model=arg["model"], max_tokens=MAX_TOKENS, messages=user("Hello raw"), stream=True
        )
    )
    deltas = [
        e.delta.text
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    return {
        "texts": texts,
        "final": summary(final),
        "event_types": [e.type for e in events],
        "raw_text": "".join(deltas),
    }


def tools(c, arg):
    """A tool use answered with a tool_result turn (whole answers)."""
    messages = user("What is the weather in Paris?")
    first = c.messages.create(
        model=arg["model"], max_tokens=MAX_TOKENS, system=SYSTEM, tools=[WEATHER_TOOL],
        messages=messages,
    )
    calls = [b for b in first.content if b.type == "tool_use"]
    messages = messages + [
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": call.id, "content": "18C and sunny"}
            for call in calls
        ]},
    ]
    second = c.messages.create(
        model=arg["model"], max_tokens=MAX_TOKENS, system=SYSTEM, tools=[WEATHER_TOOL],
        messages=messages,
    )
    return {"first": summary(first), "second": summary(second)}


def tool_stream(c, arg):
    """A tool use streamed: the helper's input_json events and its final message."""
    with c.messages.stream(
        model=arg["model"], max_tokens=MAX_TOKENS, tools=[WEATHER_TOOL],
        messages=user("What is the weather in Paris? (streamed)"),
    ) as s:
        partial = [e.partial_json for e in s if e.type == "input_json"]
        final = s.get_final_message()
    return {"partial_json": "".join(partial), "final": summary(final)}


def count_tokens(c, arg):
    counted = c.messages.count_tokens(
        model=arg["model"], system=SYSTEM, tools=[WEATHER_TOOL], messages=user("Hello")
    )
    return {"input_tokens": counted.input_tokens}


def beta(c, arg):
    """The beta namespace: an anthropic-beta header (this SDK adds no ?beta=true to the path)."""
    m = c.beta.messages.create(
        model=arg["model"], max_tokens=MAX_TOKENS, messages=user("Hello beta"),
        betas=["context-management-2025-06-27"],
    )
    return {"id": m.id, "content": [{"type": b.type, "text": getattr(b, "text", None)}
                                    for b in m.content], "stop_reason": m.stop_reason}


def error(c, arg):
    """A request the upstream refuses (the fake refuses any text saying "please fail")."""
    try:
        c.messages.create(model=arg["model"], max_tokens=MAX_TOKENS, messages=user("please fail"))
    except anthropic.APIStatusError as e:
        return {"class": type(e).__name__, "status": e.status_code,
                "error_type": getattr(e, "type", None), "api_message": getattr(e, "api_message", None),
                "body": e.body}
    return {"class": None}


SCENARIOS = {f.__name__: f for f in (message, stream, tools, tool_stream, count_tokens, beta,
                                     error)}

if __name__ == "__main__":
    if len(sys.argv) < 3 or any(s not in SCENARIOS for s in sys.argv[2:]):
        sys.exit(__doc__ + "\nscenarios: " + " ".join(SCENARIOS))
    arg = json.loads(sys.argv[1])
    c = client(arg)
    for name in sys.argv[2:]:
        try:
            out = SCENARIOS[name](c, arg)
        except Exception as e:  # reported as a line; the test names the scenario
            out = {"exception": {"class": type(e).__name__, "message": str(e),
                                 "status": getattr(e, "status_code", None),
                                 "body": getattr(e, "body", None),
                                 "traceback": traceback.format_exc()}}
        print(json.dumps(dict({"scenario": name}, **out), default=str), flush=True)
