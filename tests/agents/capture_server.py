#!/usr/bin/env python3
"""A fake Anthropic + OpenAI Responses server that records every request.

Usage: capture_server.py PORT OUT.jsonl [--text "Hello from the fake."]
         [--drop EVENT]... [--no-seq] [--no-event-line] [--tool-first]

  --drop EVENT     leave that SSE event out of every stream (to find what a client needs)
  --no-seq         no "sequence_number" in Responses events
  --no-event-line  SSE frames with "data:" only, no "event:" line
  --tool-first     a request whose conversation holds no tool result is answered
                   with a tool call (Claude Code: Bash, Codex: exec_command)
                   running `echo hi-from-tool`; the next one with the text

Each request is appended to OUT.jsonl as one JSON object:
  {"seq", "time", "method", "path", "headers": [[name, value], ...],
   "body": <utf-8 text> | null, "body_b64": <base64> (only if not utf-8),
   "body_size": <bytes>}
Headers are kept in the order and case the client sent them.

Answers:
  POST .../v1/messages               Anthropic message (SSE when "stream": true)
  POST .../v1/messages/count_tokens  {"input_tokens": 42}
  POST .../v1/responses              OpenAI Responses object (SSE when "stream": true)
  GET  .../v1/models                 an empty list (Anthropic and OpenAI shapes at once)
  anything else                      404 JSON
Stdlib only (http.server, ThreadingHTTPServer).
"""

import base64
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

TEXT = "Hello from the fake."
OUT = None
# Experiment knobs (see main): events to leave out of SSE streams, whether
# Responses events carry sequence_number, whether SSE frames carry "event:"
# lines, and whether a turn without a tool result is answered with a tool call.
DROP = set()
NO_SEQ = False
NO_EVENT_LINE = False
TOOL_FIRST = False
LOCK = threading.Lock()
SEQ = [0]


def record(handler, body):
    with LOCK:
        SEQ[0] += 1
        entry = {
            "seq": SEQ[0],
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "method": handler.command,
            "path": handler.path,
            "headers": [[k, v] for k, v in handler.headers.items()],
            "body_size": len(body),
        }
        try:
            entry["body"] = body.decode("utf-8") if body else None
        except UnicodeDecodeError:
            entry["body"] = None
            entry["body_b64"] = base64.b64encode(body).decode("ascii")
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return SEQ[0]


def anthropic_message(model, text=None):
    text = TEXT if text is None else text
    return {
        "id": "msg_fake" + uuid.uuid4().hex[:20],
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": 42,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": 6,
        },
    }


def anthropic_events(model, text=None):
    text = TEXT if text is None else text
    msg = anthropic_message(model, text)
    start = dict(msg, content=[], stop_reason=None,
                 usage=dict(msg["usage"], output_tokens=1))
    yield "message_start", {"type": "message_start", "message": start}
    yield "content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}
    yield "ping", {"type": "ping"}
    yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "text_delta", "text": text}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                            "usage": {"output_tokens": 6}}
    yield "message_stop", {"type": "message_stop"}


TOOL_CMD = "echo hi-from-tool"


def anthropic_has_tool_result(req):
    for m in req.get("messages") or []:
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, list) and any(isinstance(b, dict) and b.get("type") == "tool_result"
                                       for b in c):
            return True
    return False


def anthropic_tool_events(model):
    msg = anthropic_message(model)
    start = dict(msg, content=[], stop_reason=None,
                 usage=dict(msg["usage"], output_tokens=1))
    tool_id = "toolu_fake" + uuid.uuid4().hex[:16]
    args = json.dumps({"command": TOOL_CMD, "description": "Print a greeting"})
    yield "message_start", {"type": "message_start", "message": start}
    yield "content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "tool_use", "id": tool_id,
                                                    "name": "Bash", "input": {}}}
    yield "ping", {"type": "ping"}
    yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "input_json_delta", "partial_json": ""}}
    half = len(args) // 2
    for piece in (args[:half], args[half:]):
        yield "content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "input_json_delta",
                                                "partial_json": piece}}
    yield "content_block_stop", {"type": "content_block_stop", "index": 0}
    yield "message_delta", {"type": "message_delta",
                            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                            "usage": {"output_tokens": 20}}
    yield "message_stop", {"type": "message_stop"}


def responses_has_tool_result(req):
    inp = req.get("input")
    return isinstance(inp, list) and any(
        isinstance(i, dict) and i.get("type") == "function_call_output" for i in inp)


def responses_object(req, status, output, usage):
    return {
        "id": req["_resp_id"],
        "object": "response",
        "created_at": req["_created"],
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": req.get("instructions"),
        "max_output_tokens": req.get("max_output_tokens"),
        "model": req.get("model", "fake-model"),
        "output": output,
        "parallel_tool_calls": req.get("parallel_tool_calls", True),
        "previous_response_id": req.get("previous_response_id"),
        "prompt_cache_key": req.get("prompt_cache_key"),
        "reasoning": req.get("reasoning") or {"effort": None, "summary": None},
        "store": req.get("store", False),
        "temperature": 1.0,
        "text": req.get("text") or {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice", "auto"),
        "tools": req.get("tools", []),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def responses_events(req, text=None):
    text = TEXT if text is None else text
    req["_resp_id"] = "resp_fake" + uuid.uuid4().hex[:24]
    req["_created"] = int(time.time())
    item_id = "msg_fake" + uuid.uuid4().hex[:24]
    usage = {
        "input_tokens": 42,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 6,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 48,
    }
    if TOOL_FIRST and not responses_has_tool_result(req):
        yield from number(responses_tool_events(req, usage))
        return
    part_empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    part_done = dict(part_empty, text=text)
    item_open = {"id": item_id, "type": "message", "status": "in_progress",
                 "role": "assistant", "content": []}
    item_done = dict(item_open, status="completed", content=[part_done])
    loc = {"item_id": item_id, "output_index": 0, "content_index": 0}
    events = [
        ("response.created", {"response": responses_object(req, "in_progress", [], None)}),
        ("response.in_progress", {"response": responses_object(req, "in_progress", [], None)}),
        ("response.output_item.added", {"output_index": 0, "item": item_open}),
        ("response.content_part.added", dict(loc, part=part_empty)),
        ("response.output_text.delta", dict(loc, delta=text, logprobs=[])),
        ("response.output_text.done", dict(loc, text=text, logprobs=[])),
        ("response.content_part.done", dict(loc, part=part_done)),
        ("response.output_item.done", {"output_index": 0, "item": item_done}),
        ("response.completed",
         {"response": responses_object(req, "completed", [item_done], usage)}),
    ]
    yield from number(events)


def number(events):
    for n, (name, data) in enumerate(events):
        out = dict({"type": name}, **data)
        if not NO_SEQ:
            out["sequence_number"] = n
        yield name, out


def responses_tool_events(req, usage):
    item_id = "fc_fake" + uuid.uuid4().hex[:24]
    call_id = "call_fake" + uuid.uuid4().hex[:16]
    args = json.dumps({"cmd": TOOL_CMD})
    item_open = {"id": item_id, "type": "function_call", "status": "in_progress",
                 "name": "exec_command", "call_id": call_id, "arguments": ""}
    item_done = dict(item_open, status="completed", arguments=args)
    return [
        ("response.created", {"response": responses_object(req, "in_progress", [], None)}),
        ("response.in_progress", {"response": responses_object(req, "in_progress", [], None)}),
        ("response.output_item.added", {"output_index": 0, "item": item_open}),
        ("response.function_call_arguments.delta",
         {"item_id": item_id, "output_index": 0, "delta": args}),
        ("response.function_call_arguments.done",
         {"item_id": item_id, "output_index": 0, "arguments": args}),
        ("response.output_item.done", {"output_index": 0, "item": item_done}),
        ("response.completed",
         {"response": responses_object(req, "completed", [item_done], usage)}),
    ]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-capture/1"

    def log_message(self, fmt, *args):
        sys.stderr.write("capture: " + (fmt % args) + "\n")

    def read_body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def send_json(self, code, obj, extra=None):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_fake" + uuid.uuid4().hex[:16])
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def send_sse(self, events):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", "req_fake" + uuid.uuid4().hex[:16])
        self.send_header("x-request-id", "req_fake" + uuid.uuid4().hex[:16])
        self.end_headers()
        for name, data in events:
            if name in DROP:
                continue
            frame = "data: %s\n\n" % json.dumps(data)
            if not NO_EVENT_LINE:
                frame = "event: %s\n" % name + frame
            chunk = frame.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def handle_any(self):
        body = self.read_body()
        record(self, body)
        path = urlsplit(self.path).path.rstrip("/")
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            req = {}
        if not isinstance(req, dict):
            req = {}
        if self.command == "POST" and path.endswith("/v1/messages/count_tokens"):
            return self.send_json(200, {"input_tokens": 42})
        if self.command == "POST" and path.endswith("/v1/messages"):
            model = req.get("model", "fake-model")
            if TOOL_FIRST and not anthropic_has_tool_result(req) \
                    and not path.endswith("count_tokens") and req.get("tools"):
                if req.get("stream") is True:
                    return self.send_sse(anthropic_tool_events(model))
            if req.get("stream") is True:
                return self.send_sse(anthropic_events(model))
            return self.send_json(200, anthropic_message(model))
        if self.command == "POST" and path.endswith("/v1/responses"):
            if req.get("stream") is True:
                return self.send_sse(responses_events(req))
            events = list(responses_events(req))
            return self.send_json(200, events[-1][1]["response"])
        if self.command == "GET" and path.endswith("/v1/models"):
            # Anthropic's list shape, OpenAI's ("object"/"data") and Codex's
            # own model catalogue ("models") at once: each client reads its keys.
            return self.send_json(200, {"object": "list", "data": [], "models": [],
                                        "has_more": False, "first_id": None,
                                        "last_id": None})
        return self.send_json(404, {"type": "error", "error": {
            "type": "not_found_error", "message": "fake: no route for %s %s"
            % (self.command, self.path)}})

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = handle_any


def main():
    global OUT, TEXT, NO_SEQ, NO_EVENT_LINE, TOOL_FIRST
    args = sys.argv[1:]
    while "--drop" in args:
        i = args.index("--drop")
        DROP.add(args[i + 1])
        del args[i:i + 2]
    for flag in ("--no-seq", "--no-event-line", "--tool-first"):
        if flag in args:
            args.remove(flag)
            globals()[flag[2:].replace("-", "_").upper()] = True
    if "--text" in args:
        i = args.index("--text")
        TEXT = args[i + 1]
        del args[i:i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    port, OUT = int(args[0]), args[1]
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.daemon_threads = True
    sys.stderr.write("capture: listening on 127.0.0.1:%d, recording to %s\n"
                     % (srv.server_address[1], OUT))
    sys.stderr.flush()
    srv.serve_forever()


if __name__ == "__main__":
    main()
