#!/usr/bin/env python3
"""Peak and after-burst memory of a promptd binary under client-driven memory (issue 20, item 8).

    benches/memory_burst.py BINARY bodies      # 300 clients each holding 3.9 MiB of a 4 MiB body
    benches/memory_burst.py BINARY templates   # 100 concurrent templates rendering ~16 MiB each

Prints the daemon's VmHWM (peak RSS), its VmRSS while the clients hold, 5 s after they left,
and how many clients got which status. Needs nothing but Python 3; the provider is a refused
address (no answer is needed to measure what requests make the daemon hold).
"""
import json, os, socket, subprocess, sys, tempfile, threading, time

binary, scenario = sys.argv[1], sys.argv[2]
d = tempfile.mkdtemp(prefix="promptd-mem-")
sock = f"{d}/promptd.sock"
with open(f"{d}/promptd.toml", "w") as f:
    f.write(f'socket = "{sock}"\nstate_dir = "{d}/state"\nprompts_dir = "{d}/prompts"\n'
            '[upstream]\nbase_url = ""\n[providers.openai]\nkind = "openai"\n'
            'base_url = "http://127.0.0.1:9/v1"\napi_key = "sk-test"\nmax_retries = 0\n')
os.makedirs(f"{d}/prompts")
env = dict(os.environ, RUST_LOG="error")
daemon = subprocess.Popen([binary, "serve", "--config", f"{d}/promptd.toml"], env=env)
while not os.path.exists(sock):
    time.sleep(0.05)
time.sleep(0.3)

def status(field):
    for line in open(f"/proc/{daemon.pid}/status"):
        if line.startswith(field):
            return int(line.split()[1]) // 1024
statuses, lock = {}, threading.Lock()

def note(code):
    with lock:
        statuses[code] = statuses.get(code, 0) + 1

def read_status(s):
    try:
        head = s.recv(64)
        return head.split(b" ")[1].decode() if head.startswith(b"HTTP/1.1") else "closed"
    except OSError:
        return "reset"

print(f"idle: VmRSS {status('VmRSS')} MiB")
held = []
if scenario == "bodies":
    n, declared, sent = 300, 4 * 1024 * 1024 - 1024, int(3.9 * 1024 * 1024)
    chunk = b"x" * (64 * 1024)
    def client():
        s = socket.socket(socket.AF_UNIX); s.connect(sock)
        held.append(s)
        s.sendall(f"POST /api/parea/v1/completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n\r\n".encode())
        try:
            left = sent
            while left > 0:
                s.sendall(chunk[:min(left, len(chunk))]); left -= len(chunk)
            note("holding")
        except OSError:
            note(read_status(s))
    threads = [threading.Thread(target=client) for _ in range(n)]
    [t.start() for t in threads]
    # A client the daemon refused has its 503 waiting: read it without blocking the holders.
    time.sleep(3)
    [t.join(timeout=30) for t in threads]
    print(f"held: VmRSS {status('VmRSS')} MiB, VmHWM {status('VmHWM')} MiB; clients: {statuses}")
elif scenario == "templates":
    n = 100
    body = json.dumps({"llm_configuration": {"model": "m", "provider": "openai",
                       "messages": [{"role": "user", "content": "{{x}}" * 1000}]},
                       "llm_inputs": {"x": "y" * 16000}, "cache": False}).encode()
    def client():
        s = socket.socket(socket.AF_UNIX); s.connect(sock)
        held.append(s)
        s.sendall(f"POST /api/parea/v1/completion HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
        note(read_status(s))
    threads = [threading.Thread(target=client) for _ in range(n)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    print(f"answered: VmRSS {status('VmRSS')} MiB, VmHWM {status('VmHWM')} MiB; clients: {statuses}")
for s in held:
    s.close()
time.sleep(5)
print(f"5 s after they left: VmRSS {status('VmRSS')} MiB, VmHWM {status('VmHWM')} MiB")
daemon.terminate(); daemon.wait()
