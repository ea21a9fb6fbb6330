"""Calls of the real Parea Python SDK against promptd, one scenario per run.

Usage: python parea_calls.py SCENARIO ARG_JSON. PAREA_BASE_URL points at promptd's TCP
listener. Prints one JSON object with what the SDK returned; any exception fails the run
(exit 1, traceback on stderr), so the Rust test (tests/sdk.rs) sees the SDK's own error.
"""

import json
import os
import sys

from parea import Parea
from parea.schemas import Completion, FeedbackRequest, LLMInputs, Message, Role


def completion(p, arg):
    def ask():
        return p.completion(
            Completion(
                llm_configuration=LLMInputs(
                    model="gpt-4o-mini",
                    provider="openai",
                    messages=[Message(role=Role.user, content="Say hello to {{name}}")],
                ),
                llm_inputs={"name": arg["name"]},
            )
        )

    first, second = ask(), ask()
    chunks = p.stream(
        Completion(
            llm_configuration=LLMInputs(
                model="gpt-4o-mini",
                provider="openai",
                messages=[Message(role=Role.user, content="Say hello to {{name}}")],
            ),
            llm_inputs={"name": arg["name"]},
        )
    )
    streamed = "".join(c if isinstance(c, str) else c.decode() for c in chunks)
    return {
        "first": {"content": first.content, "cache_hit": first.cache_hit, "id": first.inference_id},
        "second": {"content": second.content, "cache_hit": second.cache_hit, "id": second.inference_id},
        "streamed": streamed,
    }


def deployment(p, arg):
    r = p.completion(Completion(deployment_id=arg["id"], llm_inputs=arg["inputs"]))
    return {"content": r.content, "cache_hit": r.cache_hit, "id": r.inference_id}


def trace_log(p, arg):
    tree = p.get_trace_log(arg["trace_id"])
    return {
        "trace_id": tree.trace_id,
        "parent_trace_id": tree.parent_trace_id,
        "root_trace_id": tree.root_trace_id,
        "status": tree.status,
        "output": tree.output,
        "children_logs": len(tree.children_logs or []),
    }


def feedback(p, arg):
    p.record_feedback(FeedbackRequest(score=arg["score"], trace_id=arg["trace_id"], name="sdk"))
    return {"sent": True}


SCENARIOS = {f.__name__: f for f in (completion, deployment, trace_log, feedback)}

if __name__ == "__main__":
    scenario, arg = sys.argv[1], json.loads(sys.argv[2])
    # The key of promptd's TCP listener (tcp_key_env): the SDK sends it as x-api-key.
    client = Parea(api_key=os.environ["PROMPTD_TCP_KEY"], project_name="sdk-test")
    print(json.dumps(SCENARIOS[scenario](client, arg)))
