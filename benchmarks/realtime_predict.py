"""Real-time prediction: Trainyard's REST API against `mlflow models serve`, same model.

Starts Trainyard the way `make run` does (``python -m app`` on a temporary data folder and a free
port), creates an admin, a read-write API token and a classification project restricted to
HistGradientBoostingClassifier, uploads a 200,000 x 20 training CSV (19 float features and a
category label) and trains it through Trainyard. Then it downloads the fitted pipeline
(``models/v1/model.joblib``) through the API, checks its SHA-256 against the registry, exports
that very pipeline with ``mlflow.sklearn.save_model`` (in a separate venv, ``.bench/mlflow-venv``,
created on first use: MLflow pins gunicorn<27) and serves it with
``mlflow models serve --env-manager local``.

One load generator drives both servers (same code, same process, alternating per cell): 1-row
and 100-row payloads at concurrency 1, 8 and 32, keep-alive connections (one per worker
thread). It prints req/s, rows/s, p50 and p99 per cell, the ratio Trainyard/MLflow, the bare
in-process ``predict`` time (the floor), and PASS/FAIL lines for the targets:

- Trainyard >= 2x MLflow's requests/s at concurrency 8 with 1-row payloads;
- Trainyard p99 <= 25 ms at concurrency 8 with 1-row payloads.

Exits 1 when a target fails (after printing everything).

With ``--baseline-commit REV`` MLflow is left out: a second Trainyard server runs the code of
commit REV (extracted with ``git archive``, same venv) on a copy of the same trained project
(trained by the baseline, so the working tree opens an older database, as an upgrade does), and
the same load generator drives both, alternating per cell, ``--rounds`` times (default 3, the
order reversed every other round). It prints the ratios new/baseline of the medians of
requests/s and of server CPU per request per cell; target on every cell: requests/s >= 0.9x and
CPU per request <= 1.1x the baseline's (no regression beyond run-to-run noise).

With ``--records both`` MLflow is left out too: two servers of the working tree run on copies
of one trained project, one keeping every real-time prediction record (the project's
``prediction_record_sample`` 1, the default) and one keeping none (0), driven alternately per
cell as above; it prints the ratios on/off, with the same targets (requests/s >= 0.9x and CPU
per request <= 1.1x: records cost less than 10 %). ``--records on`` or ``off`` sets the
sampling of the one Trainyard server of the other modes (default ``on``).

    .venv/bin/python benchmarks/realtime_predict.py [--seconds 20] [--quick] [--rows 200000]
    .venv/bin/python benchmarks/realtime_predict.py --baseline-commit 852d790 [--quick]
    .venv/bin/python benchmarks/realtime_predict.py --records both [--quick] [--rounds 3]
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from datetime import date
from pathlib import Path

import baseline  # benchmarks/baseline.py, beside this script
import joblib
import numpy as np
import pandas as pd
import requests
from sklearn.datasets import make_classification

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the pipeline's custom transformers unpickle from the repo
MLFLOW_VENV = ROOT / ".bench" / "mlflow-venv"
ADMIN = {"email": "bench@example.com", "name": "Bench", "password": "benchmark password"}
FEATURES = [f"f{i:02d}" for i in range(19)]
PAYLOAD_ROWS = (1, 100)
CONCURRENCY = (1, 8, 32)
TARGET_RATIO = 2.0  # Trainyard req/s over MLflow req/s, concurrency 8, 1 row
TARGET_P99_MS = 25.0  # Trainyard p99, concurrency 8, 1 row
DISTINCT_PAYLOADS = 64  # each worker cycles through these (different rows every request)


# -- the MLflow venv -------------------------------------------------------------------------

def pinned(names: tuple[str, ...]) -> list[str]:
    """``name==version`` lines of requirements.txt for ``names`` (the same libraries on both
    sides, so the exported pipeline unpickles and predicts identically)."""
    found = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if match and match.group(1).lower() in names:
            found[match.group(1).lower()] = line.strip()
    missing = set(names) - set(found)
    if missing:
        raise SystemExit(f"requirements.txt does not pin {', '.join(sorted(missing))}")
    return [found[n] for n in names]


def ensure_mlflow_venv() -> Path:
    """The MLflow venv's python, creating the venv when missing or when its pins changed."""
    requirements = ["mlflow", *pinned(("scikit-learn", "pandas", "numpy", "joblib"))]
    python = MLFLOW_VENV / "bin" / "python"
    marker = MLFLOW_VENV / ".installed"
    if python.exists() and marker.exists() and marker.read_text() == "\n".join(requirements):
        version = subprocess.run([str(python), "-c", "import mlflow; print(mlflow.__version__)"],
                                 capture_output=True, text=True, check=True).stdout.strip()
        print(f"MLflow venv: reusing {MLFLOW_VENV.relative_to(ROOT)} (mlflow {version})",
              flush=True)
        return python
    print(f"MLflow venv: creating {MLFLOW_VENV.relative_to(ROOT)} (python -m venv)", flush=True)
    MLFLOW_VENV.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(MLFLOW_VENV)], check=True)
    print(f"MLflow venv: pip install {' '.join(requirements)} (a few minutes)", flush=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    *requirements], check=True)
    marker.write_text("\n".join(requirements))
    version = subprocess.run([str(python), "-c", "import mlflow; print(mlflow.__version__)"],
                             capture_output=True, text=True, check=True).stdout.strip()
    print(f"MLflow venv: ready (mlflow {version})", flush=True)
    return python


# -- servers ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, proc: subprocess.Popen, log: Path, seconds: float) -> float:
    """Poll ``url`` until it answers 200; returns the seconds it took."""
    began = time.monotonic()
    while time.monotonic() - began < seconds:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}); see {log}")
        try:
            if requests.get(url, timeout=1).ok:
                return time.monotonic() - began
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s; see {log}")


def start_trainyard(workdir: Path, port: int, root: Path = ROOT) -> subprocess.Popen:
    """``python -m app`` with the code of ``root`` (the working tree, or a baseline's)."""
    env = {**os.environ, "DATA_DIR": str(workdir / "data"),
           "INSTANCE_DIR": str(workdir / "instance"), "TRAINYARD_PORT": str(port),
           "TRAINYARD_HOST": "127.0.0.1", "LOG_LEVEL": "WARNING"}
    env.pop("PYTHONPATH", None)
    workdir.mkdir(parents=True, exist_ok=True)
    log = workdir / "trainyard.log"
    proc = subprocess.Popen([sys.executable, "-m", "app"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=open(log, "wb"),
                            start_new_session=True)
    wait_for(f"http://127.0.0.1:{port}/healthz", proc, log, 60)
    return proc


def start_mlflow(python: Path, model_dir: Path, workdir: Path, port: int) -> tuple:
    env = {**os.environ, "PATH": f"{python.parent}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT), "MLFLOW_ALLOW_FILE_STORE": "true",
           "MLFLOW_TRACKING_URI": (workdir / "mlruns").as_uri(), "HOME": str(workdir)}
    log = workdir / "mlflow.log"
    proc = subprocess.Popen([str(python.parent / "mlflow"), "models", "serve", "-m",
                             str(model_dir), "--env-manager", "local", "-h", "127.0.0.1",
                             "-p", str(port)], cwd=workdir, env=env,
                            stdout=open(workdir / "mlflow.out", "wb"), stderr=open(log, "wb"),
                            start_new_session=True)
    cold = wait_for(f"http://127.0.0.1:{port}/ping", proc, log, 120)
    return proc, cold


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by the processes of group ``pgid`` (the server
    and its workers), from /proc: a measure that other load on the machine barely affects."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen | None) -> None:
    """Stop a server we started: its own process group, by PID."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    except ProcessLookupError:
        pass


# -- Trainyard set-up ------------------------------------------------------------------------

def dataset(rows: int) -> pd.DataFrame:
    x, y = make_classification(n_samples=rows, n_features=19, n_informative=8,
                               random_state=7)
    frame = pd.DataFrame(x.round(5), columns=FEATURES)
    frame["label"] = np.where(y == 1, "yes", "no")
    return frame


def train_in_trainyard(base: str, frame: pd.DataFrame) -> tuple[str, str, dict]:
    """Admin, token, project, upload, training; returns (token, project id, model version)."""
    http = requests.Session()
    csrf = http.post(f"{base}/api/v1/setup", json=ADMIN, timeout=30)
    csrf.raise_for_status()
    http.headers["X-CSRFToken"] = csrf.json()["csrf_token"]
    created = http.post(f"{base}/api/v1/tokens", json={"name": "bench", "scope": "write"},
                        timeout=30)
    created.raise_for_status()
    token = created.json()["token"]
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {token}"
    columns = [{"name": c, "type": "float"} for c in FEATURES]
    columns.append({"name": "label", "type": "category"})
    project = api.post(f"{base}/api/v1/projects", timeout=30, json={
        "name": "Realtime bench", "problem_type": "classification", "metric": "accuracy",
        "algorithms": ["HistGradientBoostingClassifier"],
        "schema": {"filename_pattern": r"^bench_\d+\.csv$", "columns": columns,
                   "target": "label"}})
    project.raise_for_status()
    project_id = project.json()["id"]
    assert project.json()["algorithms"] == ["HistGradientBoostingClassifier"], project.json()
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    upload = api.post(f"{base}/api/v1/projects/{project_id}/files",
                      params={"path": "training_batch_files/"}, timeout=300,
                      files=[("files", ("bench_1.csv", buffer.getvalue().encode(), "text/csv"))])
    upload.raise_for_status()
    print(f"Uploaded {len(frame):,} x {frame.shape[1]} training rows; training...", flush=True)
    began = time.monotonic()
    execution = api.post(f"{base}/api/v1/projects/{project_id}/executions",
                         json={"kind": "train"}, timeout=30)
    execution.raise_for_status()
    url = f"{base}/api/v1/projects/{project_id}/executions/{execution.json()['id']}"
    while True:
        state = api.get(url, timeout=30).json()
        if state["status"] not in ("queued", "running"):
            break
        if time.monotonic() - began > 1800:
            raise SystemExit("training did not finish within 30 minutes")
        time.sleep(2)
    if state["status"] != "succeeded":
        raise SystemExit(f"training {state['status']}: {state.get('error')}")
    number = api.get(f"{base}/api/v1/projects/{project_id}", timeout=30).json()["active_version"]
    version = api.get(f"{base}/api/v1/projects/{project_id}/models/{number}", timeout=30).json()
    metrics = version.get("metrics", {})
    print(f"Trained v{number} in {time.monotonic() - began:.0f} s: {version.get('algorithm')}, "
          f"held-out accuracy {metrics.get('accuracy')}", flush=True)
    return token, project_id, version


def download_model(base: str, token: str, project_id: str, version: dict,
                   target: Path) -> str:
    """Download ``models/v<N>/model.joblib`` and check it against the registry's SHA-256."""
    path = f"models/v{version['version']}/model.joblib"
    response = requests.get(f"{base}/api/v1/projects/{project_id}/files/content",
                            params={"path": path}, timeout=120,
                            headers={"Authorization": f"Bearer {token}"})
    response.raise_for_status()
    digest = hashlib.sha256(response.content).hexdigest()
    expected = version["artifacts"]["model.joblib"]
    if digest != expected:
        raise SystemExit(f"{path}: SHA-256 {digest} does not match the registry's {expected}")
    target.write_bytes(response.content)
    print(f"Downloaded {path} ({len(response.content):,} bytes), SHA-256 matches the "
          f"registry ({digest[:16]}...)", flush=True)
    return digest


EXPORT = """
import sys, joblib, mlflow.sklearn
model = joblib.load(sys.argv[1])
mlflow.sklearn.save_model(model, sys.argv[2], serialization_format="cloudpickle",
                          pip_requirements=sys.argv[3:])
print(type(model).__name__, [name for name, _ in getattr(model, "steps", [])])
"""


def export_to_mlflow(python: Path, model_file: Path, target: Path, workdir: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_ALLOW_FILE_STORE": "true",
           "HOME": str(workdir)}
    requirements = pinned(("scikit-learn", "pandas", "numpy", "joblib"))
    done = subprocess.run([str(python), "-c", EXPORT, str(model_file), str(target),
                           *requirements], env=env, cwd=workdir, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"mlflow.sklearn.save_model failed:\n{done.stderr[-3000:]}")
    print(f"Exported the same pipeline to an MLflow model ({done.stdout.strip()})", flush=True)


# -- load generation -------------------------------------------------------------------------

class Target:
    """How to call one server: path, headers and the body for some records."""

    def __init__(self, name: str, port: int, path: str, key: str, token: str | None = None,
                 pgid: int | None = None):
        self.name, self.port, self.path, self.key, self.pgid = name, port, path, key, pgid
        self.headers = {"Content-Type": "application/json", "Connection": "keep-alive"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    def body(self, records: list[dict]) -> bytes:
        return json.dumps({self.key: records}).encode()

    def predict(self, records: list[dict]) -> list:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        connection.request("POST", self.path, body=self.body(records), headers=self.headers)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        if response.status != 200:
            raise SystemExit(f"{self.name}: {response.status} {data[:500]!r}")
        return json.loads(data)["predictions"]


def run_load(target: Target, bodies: list[bytes], rows: int, concurrency: int,
             seconds: float) -> dict:
    """``concurrency`` threads, each with one keep-alive connection, post ``bodies`` in turn
    for ``seconds``; returns counts and latencies."""
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors = [0] * concurrency
    statuses: dict[int, int] = {}
    status_lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
        mine = latencies[index]
        n = index
        start.wait()
        end = stop_at[0]
        while True:
            began = time.perf_counter()
            if began >= end:
                break
            body = bodies[n % len(bodies)]
            n += 1
            try:
                connection.request("POST", target.path, body=body, headers=target.headers)
                response = connection.getresponse()
                response.read()
                status = response.status
                if response.getheader("Connection", "").lower() == "close":
                    connection.close()
            except (OSError, http.client.HTTPException):
                status = -1
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", target.port, timeout=60)
            elapsed = time.perf_counter() - began
            if status == 200:
                mine.append(elapsed * 1000)
            else:
                errors[index] += 1
                with status_lock:
                    statuses[status] = statuses.get(status, 0) + 1
        connection.close()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True)
               for i in range(concurrency)]
    for thread in threads:
        thread.start()
    cpu_before = group_cpu_seconds(target.pgid) if target.pgid else float("nan")
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    cpu = (group_cpu_seconds(target.pgid) if target.pgid else float("nan")) - cpu_before
    values = np.concatenate([np.asarray(v) for v in latencies]) if any(latencies) else \
        np.asarray([])
    ok = len(values)
    return {"requests": ok, "errors": sum(errors), "statuses": statuses,
            "rps": ok / wall, "rows_s": ok * rows / wall,
            "cpu_ms": cpu * 1000 / ok if ok else float("nan"),
            "p50": float(np.percentile(values, 50)) if ok else float("nan"),
            "p99": float(np.percentile(values, 99)) if ok else float("nan")}


def payloads(frame: pd.DataFrame, rows: int, count: int, seed: int) -> list[list[dict]]:
    rng = np.random.default_rng(seed)
    features = frame[FEATURES]
    out = []
    for _ in range(count):
        picked = features.iloc[rng.integers(0, len(features), rows)]
        out.append([{k: float(v) for k, v in r.items()} for r in picked.to_dict("records")])
    return out


def floor_ms(model, records: list[dict], repeats: int) -> tuple[float, float]:
    """Median ms of the bare ``predict``, and of ``predict`` + ``predict_proba``, on a frame of
    ``records`` (frame built outside the timing), one CPU thread as the servers use."""
    from threadpoolctl import threadpool_limits

    frame = pd.DataFrame(records)
    predict, both = [], []
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(repeats):
            began = time.perf_counter()
            model.predict(frame)
            predict.append(time.perf_counter() - began)
            began = time.perf_counter()
            model.predict(frame)
            model.predict_proba(frame)
            both.append(time.perf_counter() - began)
    return float(np.median(predict)) * 1000, float(np.median(both)) * 1000


def check_and_floors(targets: list, frame: pd.DataFrame, model_file: Path) -> dict:
    """Refuse to measure two servers that predict differently for the same 100 rows; then the
    in-process floor (the bare pipeline's cost) for each payload size."""
    check = payloads(frame, 100, 1, seed=99)[0]
    answers = [t.predict(check) for t in targets]
    if answers[0] != answers[1]:
        raise SystemExit("the two servers predict differently for the same rows")
    print("Both servers return identical predictions for 100 check rows", flush=True)
    model = joblib.load(model_file)
    return {rows: floor_ms(model, payloads(frame, rows, 1, seed=5)[0], 200)
            for rows in PAYLOAD_ROWS}


def median_of(rounds: list[dict]) -> dict:
    """One cell's rounds as one result: the median of each figure, the errors summed."""
    if len(rounds) == 1:
        return rounds[0]
    statuses: dict[int, int] = {}
    for r in rounds:
        for status, count in r["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
    return {**{key: float(np.median([r[key] for r in rounds]))
               for key in ("rps", "rows_s", "cpu_ms", "p50", "p99")},
            "requests": sum(r["requests"] for r in rounds),
            "errors": sum(r["errors"] for r in rounds), "statuses": statuses}


def load_phase(targets: list[Target], frame: pd.DataFrame, seconds: float,
               rounds: int = 1) -> tuple[dict, float, float]:
    """Every cell on every target in turn, ``rounds`` times (the order of the targets reversed
    every other round; the median of the rounds is kept); returns the results and the load
    averages before and after."""
    results = {}
    load = os.getloadavg()[0]
    print(f"\nLoad: {seconds:.0f} s per cell" + (f" and round, {rounds} rounds" if rounds > 1
                                                 else "")
          + f", servers alternating; load average before: {load:.2f} on {os.cpu_count()} CPUs",
          flush=True)
    for rows in PAYLOAD_ROWS:
        records = payloads(frame, rows, DISTINCT_PAYLOADS, seed=rows)
        for target in targets:  # warm-up: connections, code paths, model cache
            run_load(target, [target.body(r) for r in records], rows, 4, 1.0)
        for conc in CONCURRENCY:
            cell: dict[str, list[dict]] = {target.name: [] for target in targets}
            for turn in range(rounds):
                for target in (targets if turn % 2 == 0 else targets[::-1]):
                    bodies = [target.body(r) for r in records]
                    result = run_load(target, bodies, rows, conc, seconds)
                    cell[target.name].append(result)
                    print(f"  {target.name:<10} {rows:>3} row(s) x {conc:>2}: "
                          f"{result['rps']:7.1f} req/s  p50 {result['p50']:6.1f} ms  "
                          f"p99 {result['p99']:6.1f} ms  server CPU {result['cpu_ms']:5.2f} "
                          f"ms/req  errors {result['errors']}"
                          + (f" {result['statuses']}" if result["errors"] else ""), flush=True)
            for name, measured in cell.items():
                results[(name, rows, conc)] = median_of(measured)
    return results, load, os.getloadavg()[0]


# -- report ----------------------------------------------------------------------------------

def print_table(results: dict, floors: dict) -> None:
    print(f"\n{'payload':>8} {'conc':>5} | {'server':<10}{'req/s':>9}{'rows/s':>10}"
          f"{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>11}{'errors':>8} | {'ratio req/s':>11}"
          f"{'p50-floor':>11}")
    for rows in PAYLOAD_ROWS:
        for conc in CONCURRENCY:
            ty, ml = results[("trainyard", rows, conc)], results[("mlflow", rows, conc)]
            ratio = ty["rps"] / ml["rps"] if ml["rps"] else float("inf")
            for name, r in (("trainyard", ty), ("mlflow", ml)):
                gap = r["p50"] - floors[rows][0]
                extra = f"{ratio:>11.2f}" if name == "trainyard" else f"{'':>11}"
                print(f"{rows:>8} {conc:>5} | {name:<10}{r['rps']:>9.1f}{r['rows_s']:>10.0f}"
                      f"{r['p50']:>9.1f}{r['p99']:>9.1f}{r['cpu_ms']:>11.2f}{r['errors']:>8} | "
                      f"{extra}{gap:>+11.1f}")
    for rows in PAYLOAD_ROWS:
        print(f"floor, {rows:>3} row(s) in-process: predict {floors[rows][0]:.2f} ms, "
              f"predict + predict_proba {floors[rows][1]:.2f} ms")


def print_comparison(results: dict, floors: dict, short: str,
                     names: tuple[str, str] = ("new", "baseline")) -> list[tuple[str, bool]]:
    """The table ``names[0]`` against ``names[1]`` (new against baseline, or records on
    against off); returns the per-cell checks."""
    first, second = names
    print(f"\n{'payload':>8} {'conc':>5} | {'server':<10}{'req/s':>9}{'rows/s':>10}"
          f"{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/req':>11}{'errors':>8} | {'req/s ratio':>11}"
          f"{'CPU ratio':>10}{'verdict':>8}")
    checks = []
    for rows in PAYLOAD_ROWS:
        for conc in CONCURRENCY:
            new, old = results[(first, rows, conc)], results[(second, rows, conc)]
            rps, cpu = baseline.ratio(new["rps"], old["rps"]), baseline.ratio(new["cpu_ms"],
                                                                              old["cpu_ms"])
            passed = rps >= baseline.MIN_RPS_RATIO and cpu <= baseline.MAX_CPU_RATIO
            checks.append((f"{rows} row(s) x {conc}: req/s {first}/{second} {rps:.2f}, CPU "
                           f"per request {cpu:.2f}", passed))
            for name, r in ((first, new), (second, old)):
                extra = (f"{rps:>11.2f}{cpu:>10.2f}{'PASS' if passed else 'FAIL':>8}"
                         if name == first else "")
                print(f"{rows:>8} {conc:>5} | {name:<10}{r['rps']:>9.1f}{r['rows_s']:>10.0f}"
                      f"{r['p50']:>9.1f}{r['p99']:>9.1f}{r['cpu_ms']:>11.2f}{r['errors']:>8} | "
                      f"{extra}")
    for rows in PAYLOAD_ROWS:
        print(f"floor, {rows:>3} row(s) in-process: predict {floors[rows][0]:.2f} ms, "
              f"predict + predict_proba {floors[rows][1]:.2f} ms")
    print(f"\nNo regression beyond noise means, on every cell (medians of the rounds): "
          f"requests/s {first}/{second} >= "
          f"{baseline.MIN_RPS_RATIO} and server CPU per request {first}/{second} <= "
          f"{baseline.MAX_CPU_RATIO} (the CPU column is the steadier one on a busy machine).")
    return checks


def compare_with_baseline(rev: str, rows: int, seconds: float, rounds: int,
                          keep: bool) -> int:
    """The working tree's server against one running commit ``rev``, on the same project."""
    with baseline.checkout(rev) as (folder, short):
        workdir = Path(tempfile.mkdtemp(prefix="trainyard-realtime-"))
        old = new = None
        try:
            old_port, new_port = free_port(), free_port()
            old = start_trainyard(workdir / "baseline", old_port, folder)
            frame = dataset(rows)
            token, project_id, version = train_in_trainyard(f"http://127.0.0.1:{old_port}",
                                                            frame)
            model_file = workdir / "model.joblib"
            download_model(f"http://127.0.0.1:{old_port}", token, project_id, version,
                           model_file)
            stop(old)  # copy its data and database at rest: the same project for both
            shutil.copytree(workdir / "baseline", workdir / "new")
            old = start_trainyard(workdir / "baseline", old_port, folder)
            new = start_trainyard(workdir / "new", new_port)
            print(f"Started the working tree's server on a copy of {short}'s data", flush=True)
            path = f"/api/v1/projects/{project_id}/predict"
            targets = [Target("new", new_port, path, "records", token, pgid=new.pid),
                       Target("baseline", old_port, path, "records", token, pgid=old.pid)]
            floors = check_and_floors(targets, frame, model_file)
            results, load, load_after = load_phase(targets, frame, seconds, rounds)
        finally:
            stop(new)
            stop(old)
            if keep:
                print(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nMeasured {date.today().isoformat()}, working tree against {short}, "
          f"{os.cpu_count()} CPUs, load average {load:.2f} before / {load_after:.2f} after the "
          "load phase")
    checks = print_comparison(results, floors, short)
    errors = sum(r["errors"] for r in results.values())
    checks.append((f"every response 200: {errors} errors", errors == 0))
    print()
    for text, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}: {text}")
    return 0 if all(p for _, p in checks) else 1


def set_records(base: str, token: str, project_id: str, on: bool) -> None:
    """Keep every real-time prediction record of the project (on) or none (off)."""
    answer = requests.patch(f"{base}/api/v1/projects/{project_id}", timeout=30,
                            headers={"Authorization": f"Bearer {token}"},
                            json={"prediction_record_sample": 1.0 if on else 0.0})
    answer.raise_for_status()


def record_counts(workdir: Path) -> tuple[int, int]:
    """How many prediction records a stopped server's database holds, and how many its
    recorder dropped (from the usage counters)."""
    import sqlite3

    connection = sqlite3.connect(workdir / "data" / "trainyard.db")
    try:
        tables = {r[0] for r in connection.execute(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        kept = connection.execute("SELECT COUNT(*) FROM prediction_records").fetchone()[0] \
            if "prediction_records" in tables else 0
        dropped = sum(json.loads(r[0]).get("records_dropped", 0) for r in connection.execute(
            "SELECT doc FROM prediction_usage")) if "prediction_usage" in tables else 0
    finally:
        connection.close()
    return kept, dropped


def compare_records(rows: int, seconds: float, rounds: int, keep: bool) -> int:
    """Records on against records off: two servers of the working tree on copies of one
    trained project, alternating per cell."""
    workdir = Path(tempfile.mkdtemp(prefix="trainyard-records-"))
    on = off = None
    try:
        on_port, off_port = free_port(), free_port()
        on = start_trainyard(workdir / "on", on_port)
        frame = dataset(rows)
        token, project_id, version = train_in_trainyard(f"http://127.0.0.1:{on_port}", frame)
        model_file = workdir / "model.joblib"
        download_model(f"http://127.0.0.1:{on_port}", token, project_id, version, model_file)
        stop(on)  # copy its data and database at rest: the same project for both
        shutil.copytree(workdir / "on", workdir / "off")
        on = start_trainyard(workdir / "on", on_port)
        off = start_trainyard(workdir / "off", off_port)
        set_records(f"http://127.0.0.1:{on_port}", token, project_id, True)
        set_records(f"http://127.0.0.1:{off_port}", token, project_id, False)
        path = f"/api/v1/projects/{project_id}/predict"
        targets = [Target("on", on_port, path, "records", token, pgid=on.pid),
                   Target("off", off_port, path, "records", token, pgid=off.pid)]
        floors = check_and_floors(targets, frame, model_file)
        results, load, load_after = load_phase(targets, frame, seconds, rounds)
        stop(on)  # writes what its recorder still holds
        stop(off)
        kept, dropped = record_counts(workdir / "on")
        off_kept, _ = record_counts(workdir / "off")
    finally:
        stop(on)
        stop(off)
        if keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"\nMeasured {date.today().isoformat()}, records on against off (working tree), "
          f"{os.cpu_count()} CPUs, load average {load:.2f} before / {load_after:.2f} after the "
          "load phase")
    checks = print_comparison(results, floors, "off", names=("on", "off"))
    predicted = sum(r["requests"] * rows for (name, rows, _), r in results.items()
                    if name == "on")
    print(f"\nRecords on: {kept:,} prediction records written, {dropped:,} dropped by the "
          f"full queue, for about {predicted:,} rows predicted in the measured cells (plus "
          f"the warm-ups and checks); records off: {off_kept:,} written")
    errors = sum(r["errors"] for r in results.values())
    checks.append((f"every response 200: {errors} errors", errors == 0))
    checks.append((f"records off wrote none: {off_kept}", off_kept == 0))
    print()
    for text, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}: {text}")
    return 0 if all(p for _, p in checks) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="duration of each cell")
    parser.add_argument("--quick", action="store_true", help="5 s per cell")
    parser.add_argument("--rows", type=int, default=200_000, help="training rows")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--baseline-commit", metavar="REV",
                        help="instead of MLflow, measure a Trainyard server at commit REV "
                             "side by side with the working tree's")
    parser.add_argument("--rounds", type=int, default=3,
                        help="with --baseline-commit or --records both: rounds per cell, "
                             "alternating the two servers' order; the medians are compared "
                             "(default 3)")
    parser.add_argument("--records", choices=("on", "off", "both"), default="on",
                        help="keep real-time prediction records (on, the default) or not "
                             "(off); both: measure on against off side by side")
    args = parser.parse_args()
    seconds = 5.0 if args.quick else args.seconds
    if args.records == "both":
        return compare_records(args.rows, seconds, max(1, args.rounds), args.keep)
    if args.baseline_commit:
        return compare_with_baseline(args.baseline_commit, args.rows, seconds,
                                     max(1, args.rounds), args.keep)

    mlflow_python = ensure_mlflow_venv()
    workdir = Path(tempfile.mkdtemp(prefix="trainyard-realtime-"))
    trainyard = mlflow = None
    try:
        port = free_port()
        trainyard = start_trainyard(workdir, port)
        base = f"http://127.0.0.1:{port}"
        frame = dataset(args.rows)
        token, project_id, version = train_in_trainyard(base, frame)
        set_records(base, token, project_id, args.records == "on")
        model_file = workdir / "model.joblib"
        download_model(base, token, project_id, version, model_file)
        model_dir = workdir / "mlflow-model"
        export_to_mlflow(mlflow_python, model_file, model_dir, workdir)
        mlflow_port = free_port()
        mlflow, cold = start_mlflow(mlflow_python, model_dir, workdir, mlflow_port)
        print(f"mlflow models serve answered /ping after {cold:.1f} s (cold start)", flush=True)

        targets = [Target("trainyard", port, f"/api/v1/projects/{project_id}/predict",
                          "records", token, pgid=trainyard.pid),
                   Target("mlflow", mlflow_port, "/invocations", "dataframe_records",
                          pgid=mlflow.pid)]
        floors = check_and_floors(targets, frame, model_file)

        results, load, load_after = load_phase(targets, frame, seconds)
    finally:
        stop(mlflow)
        stop(trainyard)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"kept {workdir}")

    print(f"\nMeasured {date.today().isoformat()}, {os.cpu_count()} CPUs, load average "
          f"{load:.2f} before / {load_after:.2f} after the load phase")
    print_table(results, floors)
    ty, ml = results[("trainyard", 1, 8)], results[("mlflow", 1, 8)]
    errors = sum(r["errors"] for r in results.values())
    checks = [
        (f"Trainyard {ty['rps']:.1f} req/s >= {TARGET_RATIO:g}x MLflow {ml['rps']:.1f} req/s "
         f"(concurrency 8, 1 row): ratio {ty['rps'] / ml['rps']:.2f}",
         ty["rps"] >= TARGET_RATIO * ml["rps"]),
        (f"Trainyard p99 {ty['p99']:.1f} ms <= {TARGET_P99_MS:g} ms (concurrency 8, 1 row)",
         ty["p99"] <= TARGET_P99_MS),
        (f"every response 200: {errors} errors", errors == 0),
    ]
    print()
    for text, passed in checks:
        print(f"{'PASS' if passed else 'FAIL'}: {text}")
    return 0 if all(p for _, p in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
