"""A day's live monitors over a million prediction records: time and peak memory.

It writes ``--rows`` prediction records of one UTC day (``--features`` numeric features and two
categorical ones, a tenth of them labeled, real-time latencies) into a fresh SQLite database in
a temporary folder, for a project whose model version has a reference profile like training's,
then computes that day's monitors as the monitoring job does
(``thread_layer.monitoring.compute_period``: ``Collection.scan`` in batches, numpy counts, the
metrics on the labeled rows) in a fresh process, so that its peak resident memory
(``resource.getrusage``) is the computation's own and not the generator's. It prints rows,
seconds, rows per second and peak memory against the targets (under 30 s; memory well under what
the whole day's documents would take, printed beside it) and exits with status 1 if the time
target fails.

    .venv/bin/python benchmarks/monitoring.py               # 1,000,000 rows
    .venv/bin/python benchmarks/monitoring.py --rows 200000 --batch 10000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from entity.base import to_iso  # noqa: E402
from entity.database import Database  # noqa: E402
from entity.model_version import ModelVersion  # noqa: E402
from entity.project import BatchSchema, ColumnSpec, Project  # noqa: E402
from entity.user import User  # noqa: E402
from integration.storage_bridge import StorageResolver  # noqa: E402
from project_library import drift  # noqa: E402
from project_library.model_artifacts import (  # noqa: E402
    REFERENCE_PROFILE_FILE,
    sha256_hex,
    version_folder,
)
from project_library.preprocessing import FeaturePlan  # noqa: E402

DAY = datetime(2026, 12, 3, tzinfo=UTC)
TARGET_SECONDS = 30.0


def _open(folder: Path) -> tuple[Database, StorageResolver]:
    db = Database.from_url(f"sqlite:///{folder / 'bench.db'}")
    db.ensure_indexes()
    return db, StorageResolver((folder / "storage").as_uri(), db.storage_connections, None)


def generate(folder: Path, rows: int, features: int, seed: int = 0) -> str:
    """The database with its project and ``rows`` records; answers the project's id."""
    db, resolver = _open(folder)
    owner = db.users.add(User(email="bench@example.com", name="Bench", password_hash="!"))
    numeric = [f"n{i}" for i in range(features)]
    columns = [ColumnSpec(n, "float") for n in numeric] + [
        ColumnSpec("colour", "category"), ColumnSpec("size", "category"),
        ColumnSpec("y", "category")]
    project = Project(name="Bench", slug="bench", problem_type="classification",
                      schema=BatchSchema(filename_pattern=r"^b_\d+\.csv$", columns=columns,
                                         target="y"),
                      owner_id=owner.id, active_version=1, next_version=2)
    db.projects.add(project)
    rng = np.random.default_rng(seed)
    training = pd.DataFrame({n: rng.normal(0, 1, 5000) for n in numeric})
    training["colour"] = rng.choice(["red", "green", "blue"], 5000)
    training["size"] = rng.choice(["S", "M", "L", "XL"], 5000)
    y = np.where(training["n0"] > 0, "yes", "no")
    profile = drift.reference_profile(training, FeaturePlan(numeric=numeric,
                                                            one_hot=["colour", "size"]))
    profile["prediction"] = drift.target_profile(y, "classification")
    files = resolver.files(project)
    files.ensure_layout()
    data = json.dumps(profile).encode()
    files.upload_bytes(version_folder(1) + REFERENCE_PROFILE_FILE, data)
    db.model_versions.add(ModelVersion(
        project_id=project.id, version=1, execution_id="bench", algorithm="bench",
        metrics={"accuracy": 0.9}, artifacts={REFERENCE_PROFILE_FILE: sha256_hex(data)},
        problem_type="classification"))
    chunk = 20_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        values = rng.normal(0.3, 1.1, (n, features))
        colours = rng.choice(["red", "green", "blue", "violet"], n)
        sizes = rng.choice(["S", "M", "L", "XL"], n)
        seconds = np.arange(start, start + n) / rows * 86400  # spread over the day
        latency = rng.gamma(2, 2, n)
        labeled = rng.random(n) < 0.1
        right = rng.random(n) < 0.85
        docs = []
        for i in range(n):
            output = "yes" if values[i, 0] > 0 else "no"
            actual = None
            if labeled[i]:
                actual = output if right[i] else ("no" if output == "yes" else "yes")
            p_yes = float(1 / (1 + np.exp(-2 * values[i, 0])))
            created = to_iso(DAY + timedelta(seconds=float(seconds[i])))
            docs.append({"_id": uuid.uuid4().hex, "project_id": project.id, "version": 1,
                         "source": "realtime", "execution_id": None, "created_at": created,
                         "inputs": {**{numeric[j]: float(values[i, j])
                                       for j in range(features)},
                                    "colour": str(colours[i]), "size": str(sizes[i])},
                         "output": output, "probabilities": {"no": 1 - p_yes, "yes": p_yes},
                         "latency_ms": float(latency[i]), "actual": actual,
                         "labeled_at": created if actual is not None else None,
                         "shadow": None})
        db.prediction_records.add_many(docs)
    db.close()
    return project.id


def compute(folder: Path, batch: int) -> dict:
    """One day's monitors, timed, in this process (run it in a fresh one)."""
    from thread_layer.monitoring import ProfileCache, compute_period

    db, resolver = _open(folder)
    project = db.projects.get_by_slug("bench")
    versions = db.model_versions.list_for_project(project.id)
    began = time.perf_counter()
    cpu = time.process_time()
    results = compute_period(db, project, versions, ProfileCache(resolver), DAY,
                             DAY + timedelta(days=1), batch=batch)
    seconds = time.perf_counter() - began
    point = results[1]
    return {"seconds": seconds, "cpu_seconds": time.process_time() - cpu,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "rows": point["volume"]["predictions"], "labeled": point["volume"]["labeled"],
            "accuracy": point["metrics"].get("accuracy"),
            "max_psi": point["drift"]["max_psi"], "drifted": point["drift"]["drifted"],
            "p95_ms": point["latency_ms"].get("p95"),
            "database_mb": (folder / "bench.db").stat().st_size / 2**20}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--features", type=int, default=10, help="numeric features")
    parser.add_argument("--batch", type=int, default=5000, help="records per scanned batch")
    parser.add_argument("--compute-in", help=argparse.SUPPRESS)  # the child's folder
    args = parser.parse_args()
    if args.compute_in:
        print(json.dumps(compute(Path(args.compute_in), args.batch)))
        return 0
    with tempfile.TemporaryDirectory(prefix="ty-monitoring-bench-") as tmp:
        folder = Path(tmp)
        began = time.perf_counter()
        generate(folder, args.rows, args.features)
        print(f"Wrote {args.rows:,} records in {time.perf_counter() - began:.1f} s "
              f"({(folder / 'bench.db').stat().st_size / 2**20:,.0f} MB of SQLite).",
              flush=True)
        child = subprocess.run([sys.executable, __file__, "--compute-in", str(folder),
                                "--batch", str(args.batch)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
        if child.returncode:
            print(child.stderr, file=sys.stderr)
            return 1
        found = json.loads(child.stdout.strip().splitlines()[-1])
    ok = found["seconds"] < TARGET_SECONDS and found["rows"] == args.rows and \
        found["labeled"] > 0
    print()
    print(f"{'measure':<34} {'value':>12}  target")
    print(f"{'records of the day':<34} {found['rows']:>12,}  {args.rows:,}")
    print(f"{'seconds (wall)':<34} {found['seconds']:>12.1f}  < {TARGET_SECONDS:.0f}  "
          f"{'PASS' if ok else 'FAIL'}")
    print(f"{'seconds (CPU)':<34} {found['cpu_seconds']:>12.1f}")
    print(f"{'records per second':<34} {found['rows'] / found['seconds']:>12,.0f}")
    print(f"{'peak memory of the process (MB)':<34} {found['peak_rss_mb']:>12,.0f}  "
          f"(the day's documents: {found['database_mb']:,.0f} MB in the database)")
    accuracy = "-" if found["accuracy"] is None else f"{found['accuracy']:.4f}"
    print(f"{'labeled rows / accuracy':<34} {found['labeled']:>12,}  "
          f"{accuracy} (0.85 by construction)")
    print(f"{'largest feature PSI / drifted':<34} {found['max_psi']:>12.4f}  "
          f"{', '.join(found['drifted']) or '-'}")
    print(f"{'latency p95 (ms)':<34} {found['p95_ms']:>12}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
