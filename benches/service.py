#!/usr/bin/env python3
"""Service-level numbers of promptd (issue: systemd service):

- time from process start to READY=1 (sd_notify) with an empty prompts directory and with
  1,000 prompt files;
- resident memory (VmRSS) when idle, and with 1,000 idle connections open on the socket;
- how often an idle daemon wakes up (voluntary context switches of all its threads).

Usage: benches/service.py [path/to/promptd]   (default target/release/promptd; build it with
`cargo build --release`). Everything runs in a temp dir, on a Unix socket; no network.
"""
import os
import socket
import subprocess
import sys
import tempfile
import time

BIN = sys.argv[1] if len(sys.argv) > 1 else "target/release/promptd"
RUNS = 5
IDLE_SECONDS = 10


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def wakeups(pid):
    """Voluntary context switches of every thread of `pid` so far."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    total += int(line.split()[1])
    return total


def write_prompts(dir, n):
    os.makedirs(dir, exist_ok=True)
    for i in range(n):
        sub = os.path.join(dir, f"group{i % 20}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"p{i}.yaml"), "w") as f:
            f.write(
                "provider: openai\nmodel: gpt-4o-mini\nmodel_params:\n  temp: 0.2\n"
                "messages:\n  - role: system\n    content: You are prompt {{n}}.\n"
                f"  - role: user\n    content: \"Question {i}: {{{{question}}}}\"\n"
            )


def start(tmp, prompts):
    sock = os.path.join(tmp, "promptd.sock")
    cfg = os.path.join(tmp, "promptd.toml")
    with open(cfg, "w") as f:
        f.write(
            f'socket = "{sock}"\nstate_dir = "{tmp}/state"\nprompts_dir = "{prompts}"\n'
            'log_level = "warn"\n[providers.openai]\nkind = "openai"\n'
            'base_url = "http://127.0.0.1:9/v1"\n'
        )
    notify_path = os.path.join(tmp, "notify.sock")
    if os.path.exists(notify_path):
        os.unlink(notify_path)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(notify_path)
    notify.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=notify_path)
    t0 = time.perf_counter()
    proc = subprocess.Popen([BIN, "serve", "--config", cfg], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        msg = notify.recv(4096).decode()
        if "READY=1" in msg:
            break
    ready = time.perf_counter() - t0
    notify.close()
    return proc, sock, ready


def stop(proc):
    proc.terminate()
    proc.wait(timeout=30)


def main():
    print(f"binary: {BIN}; {os.cpu_count()} cores")
    for n in (0, 1000):
        times, restarts = [], []
        for run in range(RUNS):
            with tempfile.TemporaryDirectory() as tmp:
                prompts = os.path.join(tmp, "prompts")
                write_prompts(prompts, n)
                # A fresh state dir: every deployment is stored in sled on the way.
                proc, sock, ready = start(tmp, prompts)
                times.append(ready)
                stop(proc)
                # A restart: the same files, the deployments already stored.
                proc, sock, ready = start(tmp, prompts)
                restarts.append(ready)
                stop(proc)
        for label, values in (("start", times), ("restart", restarts)):
            values.sort()
            print(f"{label} to READY=1, {n:>4} prompt files: median "
                  f"{values[len(values)//2]*1000:.1f} ms (min {values[0]*1000:.1f}, "
                  f"max {values[-1]*1000:.1f}; {RUNS} state dirs)")
    with tempfile.TemporaryDirectory() as tmp:
        proc, sock, _ = start(tmp, os.path.join(tmp, "prompts"))
        time.sleep(0.5)
        idle = rss_kib(proc.pid)
        w0 = wakeups(proc.pid)
        time.sleep(IDLE_SECONDS)
        rate = (wakeups(proc.pid) - w0) / IDLE_SECONDS
        print(f"idle wakeups: {rate:.1f}/s (voluntary context switches of all threads over "
              f"{IDLE_SECONDS} s with nothing to do)")
        conns = []
        for _ in range(1000):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.connect(sock)
            conns.append(c)
        # One request on a fresh connection proves the daemon still serves.
        c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        c.connect(sock)
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = c.recv(64)
        time.sleep(0.5)
        busy = rss_kib(proc.pid)
        status_line = answer.split(b"\r\n")[0].decode()
        print(f"RSS idle: {idle/1024:.1f} MiB; with 1,000 idle connections: {busy/1024:.1f} MiB "
              f"(+{(busy-idle)/1000:.1f} KiB per connection); health: {status_line}")
        for c in conns:
            c.close()
        stop(proc)


if __name__ == "__main__":
    main()
