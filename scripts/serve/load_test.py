#!/usr/bin/env python3
"""A bounded load test of `edgenlu serve`: starts the server on a free loopback port, runs N
concurrent clients for M seconds against POST /v1/nlu with SNIPS test utterances (and every
tenth request a short chat completion), samples the server's RSS every second, then stops it
with SIGTERM (which drains). Prints requests, errors, latency p50/p99 and RSS over time; exits
nonzero on any error. Only the standard library:

    python3 scripts/serve/load_test.py --edgenlu target/release/edgenlu --clients 4 --seconds 20 \
        [--index snips-intents]
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mib(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def post(url, body, timeout=60):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, json.loads(r.read())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--edgenlu", default=str(REPO / "target/release/edgenlu"))
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--data", default=str(REPO.parent / "shared/datasets/snips/test.jsonl"))
    ap.add_argument("--index", default="snips-intents", help="the intents skill's datastore")
    args = ap.parse_args()
    texts = [json.loads(l)["text"] for l in open(args.data) if l.strip()]
    port = free_port()
    server = subprocess.Popen(
        [args.edgenlu, "serve", "--listen", f"127.0.0.1:{port}", "--workers", "2",
         "--queue", str(4 * args.clients), "--index", args.index],
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            urllib.request.urlopen(base + "/healthz", timeout=2).read()
            break
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                print("the server did not start:", server.stderr.read(), file=sys.stderr)
                return 1
            time.sleep(0.2)

    latencies, errors, lock = [], [], threading.Lock()
    stop_at = time.time() + args.seconds

    def client(k):
        i = k
        while time.time() < stop_at:
            text = texts[i % len(texts)]
            start = time.perf_counter()
            try:
                if i % 10 == 9:
                    status, body = post(base + "/v1/chat/completions",
                                        {"messages": [{"role": "user", "content": text}], "max_tokens": 8})
                    ok = status == 200 and body["usage"]["completion_tokens"] > 0
                else:
                    status, body = post(base + "/v1/nlu", {"text": text})
                    ok = status == 200 and body["response"]["intent"]
                if not ok:
                    raise RuntimeError(f"bad answer {status}: {body}")
                with lock:
                    latencies.append((time.perf_counter() - start) * 1e3)
            except Exception as e:  # any failure is an error of the run
                with lock:
                    errors.append(f"{text!r}: {e}")
            i += args.clients

    rss = [(0, rss_mib(server.pid))]
    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.clients)]
    for t in threads:
        t.start()
    t0 = time.time()
    while any(t.is_alive() for t in threads):
        time.sleep(1)
        rss.append((round(time.time() - t0), rss_mib(server.pid)))
    for t in threads:
        t.join()
    server.send_signal(signal.SIGTERM)
    code = server.wait(timeout=60)
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * (len(latencies) - 1) + 0.5))] if latencies else float("nan")
    report = {
        "clients": args.clients,
        "seconds": args.seconds,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "latency_ms": {"p50": round(pct(0.5), 1), "p99": round(pct(0.99), 1)},
        "rss_mib": {"start": round(rss[0][1], 1), "end": round(rss[-1][1], 1), "max": round(max(r for _, r in rss), 1)},
        "rss_mib_over_time": [[t, round(r, 1)] for t, r in rss],
        "server_exit": code,
    }
    print(json.dumps(report))
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)
    return 1 if errors or code != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
