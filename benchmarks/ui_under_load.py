"""UI responsiveness while models train.

Starts Trainyard the way `make run` does (``python -m app``: gunicorn, embedded defaults) on a
temporary data folder, creates two projects each with a 200,000 x 20 training CSV, and samples the
project page and /healthz: first while idle, then while both trainings run at once. Prints p50 and
p95 latency for each phase and the ratio between them. Target: p95 under 250 ms while training.

    .venv/bin/python benchmarks/ui_under_load.py [--rows 200000] [--seconds 40]
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import requests
from local_server import free_port, start_server  # benchmarks/local_server.py, beside this script
from sklearn.datasets import make_classification

ADMIN = {"email": "bench@example.com", "name": "Bench", "password": "benchmark password"}
TARGET_P95_MS = 250.0



def training_csv(rows: int, seed: int) -> bytes:
    x, y = make_classification(n_samples=rows, n_features=19, n_informative=8,
                               random_state=seed)
    frame = pd.DataFrame(x, columns=[f"f{i:02d}" for i in range(19)])
    frame["label"] = np.where(y == 1, "yes", "no")
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.5f")
    return buffer.getvalue().encode()


def sample(http: requests.Session, urls: list[str], seconds: float) -> dict[str, list[float]]:
    """Request each URL in turn for ``seconds``; returns latencies in ms per URL."""
    latencies: dict[str, list[float]] = {url: [] for url in urls}
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for url in urls:
            began = time.perf_counter()
            response = http.get(url, timeout=30)
            latencies[url].append((time.perf_counter() - began) * 1000)
            response.raise_for_status()
        time.sleep(0.05)
    return latencies


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=40.0,
                        help="sampling time of each phase")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="trainyard-bench-"))
    port = free_port()
    server = start_server(workdir, port)
    base = f"http://127.0.0.1:{port}"
    try:
        http = requests.Session()
        token = http.post(f"{base}/api/v1/setup", json=ADMIN, timeout=30).json()["csrf_token"]
        http.headers["X-CSRFToken"] = token
        columns = [{"name": f"f{i:02d}", "type": "float"} for i in range(19)]
        columns.append({"name": "label", "type": "category"})
        projects = []
        for n in range(2):
            project = http.post(f"{base}/api/v1/projects", timeout=30, json={
                "name": f"Load test {n}", "problem_type": "classification",
                "schema": {"filename_pattern": r"^load_\d+\.csv$", "columns": columns,
                           "target": "label"}}).json()
            data = training_csv(args.rows, seed=n)
            upload = http.post(f"{base}/api/v1/projects/{project['id']}/files",
                               params={"path": "training_batch_files/"}, timeout=300,
                               files=[("files", (f"load_{n}.csv", data, "text/csv"))])
            upload.raise_for_status()
            projects.append(project)
        print(f"{len(projects)} projects with {args.rows:,} x 20 training files each", flush=True)

        urls = [f"{base}/projects/{projects[0]['slug']}", f"{base}/healthz"]
        idle = sample(http, urls, args.seconds)

        executions = []
        for project in projects:
            r = http.post(f"{base}/api/v1/projects/{project['id']}/executions",
                          json={"kind": "train"}, timeout=30)
            r.raise_for_status()
            executions.append((project["id"], r.json()["id"]))
        time.sleep(3)  # let both worker processes get past start-up and into real work
        busy = sample(http, urls, args.seconds)
        states = [http.get(f"{base}/api/v1/projects/{p}/executions/{e}", timeout=30).json()
                  for p, e in executions]
        running = [s["stage"] for s in states if s["status"] == "running"]
        for p, e in executions:
            http.post(f"{base}/api/v1/projects/{p}/executions/{e}/cancel", timeout=30)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)

    print(f"\nBoth trainings were still running at the end of sampling: {len(running) == 2} "
          f"(stages: {', '.join(running) or 'none'})\n")
    print(f"{'endpoint':<32}{'phase':<10}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}")
    ok = True
    for url in urls:
        name = url.replace(base, "") or "/"
        for phase, data in (("idle", idle), ("training", busy)):
            values = data[url]
            print(f"{name:<32}{phase:<10}{len(values):>6}{statistics.median(values):>10.1f}"
                  f"{percentile(values, 95):>10.1f}")
        ratio_50 = statistics.median(busy[url]) / statistics.median(idle[url])
        ratio_95 = percentile(busy[url], 95) / percentile(idle[url], 95)
        p95 = percentile(busy[url], 95)
        verdict = "PASS" if p95 < TARGET_P95_MS else "FAIL"
        ok &= p95 < TARGET_P95_MS
        print(f"{'':<32}{'ratio':<10}{'':>6}{ratio_50:>10.2f}{ratio_95:>10.2f}   "
              f"p95 while training {p95:.1f} ms < {TARGET_P95_MS:.0f} ms: {verdict}")
    if len(running) != 2:
        print("WARNING: a training ended before sampling did; the 'training' phase was partly "
              "idle. Use more --rows or fewer --seconds.")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
