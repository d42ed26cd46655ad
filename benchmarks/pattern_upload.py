"""Uploads against a pathological file-name pattern (issue 21, finding 2).

Starts Trainyard the way `make run` does (``python -m app``, temporary data folder), creates two
projects that differ only in their file-name pattern: a benign one, ``^a+$`` (the baseline), and
the pathological ``^(a+)+$``, on which Python's backtracking ``re`` needs about 2**n steps for a
name of n a's followed by '!' (9 s for n = 28 before patterns ran on RE2). It uploads a small
CSV under such a name (refused: the name does not match) and under n a's (accepted) to each
project in turn, while a second client samples /healthz, and prints p50 and p95 per case with
the ratio hostile / baseline. Target: a hostile upload is answered in under 50 ms (the median;
the p95 on a busy 2-core machine is mostly the machine, which the baseline's p95 shows).

For scale it also times Python's ``re`` on the same pattern in this process for a few small n,
next to RE2 (google-re2, what the platform uses now).

    .venv/bin/python benchmarks/pattern_upload.py [--length 28] [--uploads 40]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import re2
import requests
from local_server import free_port, start_server  # benchmarks/local_server.py, beside this script

ADMIN = {"email": "bench@example.com", "name": "Bench", "password": "benchmark password"}
PATTERNS = {"baseline": r"^a+$", "hostile": r"^(a+)+$"}
TARGET_MS = 50.0
CSV = b"x,y\n" + b"".join(f"{i},{'yes' if i % 2 else 'no'}\n".encode() for i in range(20))



def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def python_re_seconds(n: int) -> float:
    began = time.perf_counter()
    re.fullmatch(PATTERNS["hostile"], "a" * n + "!")
    return time.perf_counter() - began


def re2_seconds(n: int) -> float:
    compiled = re2.compile(PATTERNS["hostile"])
    began = time.perf_counter()
    compiled.fullmatch("a" * n + "!")
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=28, help="the a's in the file name")
    parser.add_argument("--uploads", type=int, default=40, help="uploads per case")
    args = parser.parse_args()

    print(f"{'n':>4}{'Python re s':>14}{'RE2 s':>12}   (the hostile pattern, in this process)")
    for n in (16, 18, 20, 22):
        print(f"{n:>4}{python_re_seconds(n):>14.4f}{re2_seconds(n):>12.6f}")
    print(f"{'':>4}Python re doubles per extra a: n = {args.length} would take about "
          f"{python_re_seconds(22) * 2 ** (args.length - 22):.0f} s here\n", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="trainyard-bench-"))
    port = free_port()
    server = start_server(workdir, port)
    base = f"http://127.0.0.1:{port}"
    names = {"refused": "a" * args.length + "!", "accepted": "a" * args.length}
    latencies: dict[tuple[str, str], list[float]] = {}
    statuses: dict[tuple[str, str], set[int]] = {}
    health: dict[str, list[float]] = {"baseline": [], "hostile": []}
    try:
        http = requests.Session()
        token = http.post(f"{base}/api/v1/setup", json=ADMIN, timeout=30).json()["csrf_token"]
        http.headers["X-CSRFToken"] = token
        projects = {}
        for label, pattern in PATTERNS.items():
            response = http.post(f"{base}/api/v1/projects", timeout=30, json={
                "name": f"Pattern {label}", "problem_type": "classification",
                "schema": {"filename_pattern": pattern, "target": "y",
                           "columns": [{"name": "x", "type": "integer"},
                                       {"name": "y", "type": "category"}]}})
            response.raise_for_status()
            projects[label] = response.json()["id"]

        def upload(label: str, name: str) -> tuple[float, int]:
            began = time.perf_counter()
            response = http.post(f"{base}/api/v1/projects/{projects[label]}/files",
                                 params={"path": "training_batch_files/", "overwrite": "true"},
                                 timeout=120,
                                 files=[("files", (name, CSV, "text/csv"))])
            return (time.perf_counter() - began) * 1000, response.status_code

        for label in PATTERNS:  # warm both projects' code paths once
            upload(label, names["accepted"])
        for label in PATTERNS:
            stop = threading.Event()

            def sample_health(into: list[float] = health[label],
                              stop: threading.Event = stop) -> None:
                probe = requests.Session()
                while not stop.is_set():
                    began = time.perf_counter()
                    probe.get(f"{base}/healthz", timeout=120).raise_for_status()
                    into.append((time.perf_counter() - began) * 1000)
                    time.sleep(0.01)

            sampler = threading.Thread(target=sample_health)
            sampler.start()
            try:
                for _ in range(args.uploads):
                    for case, name in names.items():
                        ms, status = upload(label, name)
                        latencies.setdefault((label, case), []).append(ms)
                        statuses.setdefault((label, case), set()).add(status)
            finally:
                stop.set()
                sampler.join()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    print(f"{'upload':<10}{'pattern':<22}{'status':>8}{'n':>5}{'p50 ms':>10}{'p95 ms':>10}")
    ok = True
    for case in names:
        for label, pattern in PATTERNS.items():
            values = latencies[(label, case)]
            shown = ",".join(str(s) for s in sorted(statuses[(label, case)]))
            print(f"{case:<10}{pattern:<22}{shown:>8}{len(values):>5}"
                  f"{statistics.median(values):>10.1f}{percentile(values, 95):>10.1f}")
        hostile, baseline = latencies[("hostile", case)], latencies[("baseline", case)]
        p50 = statistics.median(hostile)
        verdict = "PASS" if p50 < TARGET_MS else "FAIL"
        ok &= p50 < TARGET_MS
        print(f"{'':<10}{'ratio hostile/baseline':<22}{'':>13}"
              f"{p50 / statistics.median(baseline):>10.2f}"
              f"{percentile(hostile, 95) / percentile(baseline, 95):>10.2f}   hostile p50 "
              f"{p50:.1f} ms < {TARGET_MS:.0f} ms: {verdict}")
    expected = {"refused": {422}, "accepted": {201}}
    for (label, case), seen in statuses.items():
        if seen != expected[case]:
            print(f"WARNING: {label} {case} answered {sorted(seen)}, expected "
                  f"{sorted(expected[case])}")
            ok = False
    print(f"\n/healthz during the uploads: p50 / p95 / max ms, baseline "
          f"{statistics.median(health['baseline']):.1f} / {percentile(health['baseline'], 95):.1f}"
          f" / {max(health['baseline']):.1f}, hostile {statistics.median(health['hostile']):.1f}"
          f" / {percentile(health['hostile'], 95):.1f} / {max(health['hostile']):.1f}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
