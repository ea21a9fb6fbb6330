"""Calls of the real OpenAI Python SDK against promptd's /v1 routes, one scenario per run.

Usage: python openai_calls.py SCENARIO ARG_JSON. ARG_JSON has "base_url" (TCP) or "socket"
(the Unix socket, through httpx's uds transport). Prints one JSON object with what the SDK
returned; any exception fails the run (exit 1, traceback on stderr).
"""

import json
import os
import sys

import httpx
from openai import OpenAI


def client(arg):
    if "socket" in arg:
        transport = httpx.HTTPTransport(uds=arg["socket"])
        return OpenAI(
            base_url="http://localhost/v1",
            api_key="unused",
            http_client=httpx.Client(transport=transport),
        )
    # Over TCP, the key of promptd's listener (tcp_key_env), sent as a bearer token.
    return OpenAI(base_url=arg["base_url"], api_key=os.environ["PROMPTD_TCP_KEY"])


def chat(c, arg):
    messages = [{"role": "user", "content": arg.get("text", "Hello")}]
    whole = c.chat.completions.create(model="gpt-4o-mini", messages=messages)
    again = c.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)
    parsed = again.parse()
    chunks = list(
        c.chat.completions.create(
            model="gpt-4o-mini",
            messages=messages,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    usage = [ch.usage.total_tokens for ch in chunks if not ch.choices and ch.usage]
    return {
        "content": whole.choices[0].message.content,
        "finish_reason": whole.choices[0].finish_reason,
        "total_tokens": whole.usage.total_tokens,
        "again_content": parsed.choices[0].message.content,
        "again_cache": again.headers.get("x-promptd-cache"),
        "streamed": text,
        "stream_usage": usage,
    }


def embeddings(c, arg):
    first = c.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta"])
    again = c.embeddings.with_raw_response.create(model="text-embedding-3-small", input=["beta"])
    return {
        "indices": [d.index for d in first.data],
        "vectors": [d.embedding for d in first.data],
        "again": [d.embedding for d in again.parse().data],
        "again_cache": again.headers.get("x-promptd-cache"),
    }


def responses(c, arg):
    """The Responses API (translated by promptd to the chat-completions fake): whole, a raw
    event stream, and the SDK's stream helper with its final response; the whole answer
    continued by previous_response_id, retrieved, its successor's input items listed, deleted."""
    text = arg.get("text", "Hello")
    whole = c.responses.create(model="gpt-4o-mini", instructions="Be brief.", input=text)
    events = list(c.responses.create(model="gpt-4o-mini", input=text + " again", stream=True))
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    completed = [e for e in events if e.type == "response.completed"]
    with c.responses.stream(model="gpt-4o-mini", input=text + " once more") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    # promptd kept the whole answer: continue it, read it back, list its input, delete it.
    followed = c.responses.create(
        model="gpt-4o-mini", input="And then?", previous_response_id=whole.id
    )
    retrieved = c.responses.retrieve(whole.id)
    items = c.responses.input_items.list(followed.id)
    c.responses.delete(whole.id)
    try:
        c.responses.retrieve(whole.id)
        gone = None
    except Exception as e:  # the SDK's own exception type
        gone = {"type": type(e).__name__, "status": getattr(e, "status_code", None)}
    return {
        "followed_text": followed.output_text,
        "followed_previous": followed.previous_response_id,
        "retrieved_id": retrieved.id,
        "retrieved_text": retrieved.output_text,
        "followed_items": [getattr(i, "role", None) for i in items.data],
        "gone": gone,
        "output_text": whole.output_text,
        "status": whole.status,
        "id": whole.id,
        "total_tokens": whole.usage.total_tokens,
        "streamed": streamed,
        "first": events[0].type,
        "last": events[-1].type,
        "sequence": [e.sequence_number for e in events],
        "completed_text": completed[0].response.output_text if completed else None,
        "final_text": final.output_text,
    }


def responses_tool(c, arg):
    """A function tool round trip with responses.create: the model calls get_weather, the
    call and its output go back as input items; then the same streamed (argument deltas, the
    call's item done)."""
    tools = [{"type": "function", "name": "get_weather", "description": "The weather in a city.",
              "parameters": {"type": "object", "properties": {"city": {"type": "string"},
                             "unit": {"type": "string"}}, "required": ["city"]}}]
    asked = [{"role": "user", "content": arg.get("text", "Weather in Paris?")}]
    first = c.responses.create(model="gpt-4o-mini", input=asked, tools=tools)
    call = next(item for item in first.output if item.type == "function_call")
    output = {"type": "function_call_output", "call_id": call.call_id,
              "output": "18 degrees and sunny in Paris"}
    second = c.responses.create(model="gpt-4o-mini", input=asked + [call, output], tools=tools)
    streamed = asked + [{"role": "user", "content": "And streamed?"}]
    events = list(c.responses.create(model="gpt-4o-mini", input=streamed, tools=tools, stream=True))
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = [e.item for e in events
            if e.type == "response.output_item.done" and e.item.type == "function_call"]
    return {
        "call": {"name": call.name, "call_id": call.call_id, "arguments": call.arguments},
        "first_status": first.status,
        "answer": second.output_text,
        "streamed_arguments": deltas,
        "streamed_call": {"name": done[0].name, "call_id": done[0].call_id,
                          "arguments": done[0].arguments} if done else None,
        "last": events[-1].type,
    }


def models(c, arg):
    return {"ids": [m.id for m in c.models.list()]}


def error(c, arg):
    try:
        c.chat.completions.create(model="gpt-4o-mini", messages=[])
    except Exception as e:  # the SDK's own exception type and fields
        return {"type": type(e).__name__, "status": getattr(e, "status_code", None),
                "code": getattr(e, "code", None), "param": getattr(e, "param", None)}
    return {"type": None}


SCENARIOS = {f.__name__: f for f in (chat, responses, responses_tool, embeddings, models, error)}

if __name__ == "__main__":
    scenario, arg = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(SCENARIOS[scenario](client(arg), arg)))
