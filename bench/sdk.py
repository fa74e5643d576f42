"""Caller-thread overhead of the Python SDK: ``add_usage`` + ``track`` per call.

    python bench/sdk.py [--calls 50000] [--rounds 5]

The SDK's worker thread really delivers while the loop runs: events go to a
sink HTTP server in a separate process on 127.0.0.1 (so the server does not
compete for this process's GIL, but the SDK's own JSON encoding and sending
does, as it would in an application). The baseline, measured in the same
run, is a bare ``queue.Queue().put`` of a comparable tuple: the cheapest
way an application could hand a record to a background thread at all.
Reported: median microseconds per call over the rounds and the ratio to the
baseline. Target: <= 20 us per add_usage + track.
"""

from __future__ import annotations

import argparse
import queue
import socket
import statistics
import subprocess
import sys
import textwrap
import time

from ai_cost_calc import AiCostCalc

TARGET_US = 20.0

SINK = textwrap.dedent(
    """
    import json, sys
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as two writes
        def log_message(self, *args):
            pass
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            results = [{"id": i, "status": "created"} for i, _ in enumerate(body["events"])]
            data = json.dumps({"budget_state_version": 1, "results": results}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)
    print("ready", flush=True)
    server.serve_forever()
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def time_sdk(md: AiCostCalc, calls: int) -> float:
    add_usage, track = md.add_usage, md.track
    started = time.perf_counter()
    for i in range(calls):
        add_usage(model="openai/gpt-4o", input_tokens=1200, output_tokens=340)
        track(customer_id="8291", event_type="summarize", revenue_amount_in_cents=i % 1000)
    return (time.perf_counter() - started) / calls * 1e6


def time_queue_put(calls: int) -> float:
    q: queue.Queue[tuple] = queue.Queue()
    put = q.put
    started = time.perf_counter()
    for i in range(calls):
        put(("8291", "summarize", i % 1000, ("openai/gpt-4o", 1200, 340)))
    return (time.perf_counter() - started) / calls * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert sink.stdout is not None and sink.stdout.readline().strip() == "ready"
        md = AiCostCalc(
            api_key="tl_live_bench",
            base_url=f"http://127.0.0.1:{port}",
            max_queue_size=args.calls * args.rounds + 1,
            flush_at_exit=False,
        )
        time_sdk(md, 1000)  # warm up: start the worker, open the connection
        time_queue_put(1000)
        sdk_us, base_us = [], []
        for _ in range(args.rounds):
            base_us.append(time_queue_put(args.calls))
            sdk_us.append(time_sdk(md, args.calls))
        flushed = md.shutdown(timeout=60)
        stats = md.stats()
    finally:
        sink.terminate()
        sink.wait(5)

    sdk = statistics.median(sdk_us)
    base = statistics.median(base_us)
    print(f"calls per round            {args.calls} x {args.rounds} rounds")
    print(f"queue.Queue.put baseline   {base:8.2f} us/call")
    print(f"add_usage + track          {sdk:8.2f} us/call  (min {min(sdk_us):.2f})")
    print(f"ratio to baseline          {sdk / base:8.2f} x")
    print(f"target <= {TARGET_US:.0f} us           {'met' if sdk <= TARGET_US else 'MISSED'}")
    print(
        f"delivered {stats['created']} of {stats['enqueued']} events "
        f"in {stats['requests']} requests; dropped {stats['dropped']}; flushed={flushed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
