"""Is a Trainyard training worth clicking Train for? The acceptance check, run on real data.

For each bundled scikit-learn dataset this script runs the platform's own training
(``project_library.training.train_project`` on a LocalStorage in a temporary folder, as the worker
does, with the worker's default thread caps: ``EXECUTION_THREADS=1``, i.e. ``threadpool_limits(1)``
and ``n_jobs=1``) and compares, side by side:

a. the held-out score of the version Trainyard chose;
b. the held-out score of a default HistGradientBoosting model fitted here on the SAME split (rebuilt
   from the rule recorded in ``metrics["split"]`` and checked against its SHA-256);
   target: Trainyard no worse than 1 accuracy point / 2 % RMSE;
c. the platform's wall time against a bare scikit-learn script doing the same search (same
   candidates, same CV folds, same imputation/scaling, same refit, same thread caps, reading the
   same CSV files) in this process; target: ratio <= 1.3.

Every number is measured with ``time.perf_counter`` in this run. Each timing is the best of
``--repeats`` runs (default 2), the platform and the bare script alternating. The exit status is 1
if a target fails (after printing everything).

    .venv/bin/python benchmarks/model_quality.py [--datasets wine,digits] [--repeats 2]
"""

from __future__ import annotations

import os

# The worker caps the math libraries before numpy is imported; so does this script.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
)
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.metrics import accuracy_score, root_mean_squared_error  # noqa: E402
from sklearn.model_selection import (  # noqa: E402
    KFold,
    StratifiedKFold,
    cross_validate,
    train_test_split,
)
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from cloud_storage import open_storage  # noqa: E402
from entity.project import BatchSchema, ColumnSpec, Project  # noqa: E402
from integration.file_manager import TRAINING, ProjectFiles  # noqa: E402
from project_library.training import (  # noqa: E402
    SCORERS,
    candidate_models,
    index_digest,
    train_project,
)

#: name -> (loader, problem type, selection metric)
DATASETS = {
    "breast_cancer": (datasets.load_breast_cancer, "classification", "accuracy"),
    "wine": (datasets.load_wine, "classification", "accuracy"),
    "digits": (datasets.load_digits, "classification", "accuracy"),
    "diabetes": (datasets.load_diabetes, "regression", "rmse"),
}
THREADS = 1  # EXECUTION_THREADS' default
PARTS = 3  # batch files per dataset
MAX_ACCURACY_GAP = 0.01
MAX_RMSE_EXCESS = 0.02
MAX_TIME_RATIO = 1.3


@dataclass
class Outcome:
    dataset: str
    metric: str
    algorithm: str
    platform_score: float
    hgb_score: float
    platform_seconds: float
    bare_seconds: float
    bare_algorithm: str
    bare_score: float
    stages: dict[str, float]
    platform_cpu: float
    bare_cpu: float

    @property
    def quality_ok(self) -> bool:
        if self.metric == "rmse":
            return self.platform_score <= self.hgb_score * (1 + MAX_RMSE_EXCESS)
        return self.platform_score >= self.hgb_score - MAX_ACCURACY_GAP

    @property
    def ratio(self) -> float:
        return self.platform_seconds / self.bare_seconds

    @property
    def speed_ok(self) -> bool:
        return self.ratio <= MAX_TIME_RATIO


class StageClock:
    """A Reporter that keeps nothing but the time each stage started (for the breakdown)."""

    def __init__(self):
        self.started: dict[str, float] = {}

    def log(self, message: str, *, stage: str, level: str = "INFO") -> None:
        self.started.setdefault(stage, time.perf_counter())

    def progress(self, stage: str, percent: int) -> None:
        self.started.setdefault(stage, time.perf_counter())

    def durations(self, end: float) -> dict[str, float]:
        ordered = sorted(self.started.items(), key=lambda item: item[1])
        ends = [t for _, t in ordered[1:]] + [end]
        return {stage: round(stop - start, 3)
                for (stage, start), stop in zip(ordered, ends, strict=True)}


def dataset_frame(name: str) -> pd.DataFrame:
    """The bundled dataset as one frame, target last as ``target``."""
    frame = DATASETS[name][0](as_frame=True).frame.copy()
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    return frame


def project_for(frame: pd.DataFrame, problem_type: str, metric: str) -> Project:
    columns = [ColumnSpec(name, "integer" if pd.api.types.is_integer_dtype(frame[name])
                          else "float") for name in frame.columns]
    schema = BatchSchema(filename_pattern=r"^batch_\d{8}_\d{6}\.csv$", columns=columns,
                         target="target").validate()
    return Project(name="Benchmark", slug="benchmark", problem_type=problem_type,
                   schema=schema, owner_id="benchmark", metric=metric)


def batch_files(frame: pd.DataFrame) -> dict[str, bytes]:
    """The frame, shuffled, as PARTS CSV batch files named like uploads."""
    shuffled = frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    files = {}
    for index, part in enumerate(np.array_split(np.arange(len(shuffled)), PARTS)):
        buffer = io.StringIO()
        shuffled.iloc[part].to_csv(buffer, index=False)
        files[f"batch_2024010{index + 1}_120000.csv"] = buffer.getvalue().encode("utf-8")
    return files


def run_platform(project: Project, batches: dict[str, bytes]) -> tuple[dict, float, dict]:
    """``train_project`` on a fresh LocalStorage, under the worker's thread cap.

    Returns (result, wall seconds, wall seconds per stage); the process CPU seconds are put in
    ``result["_cpu_seconds"]``."""
    with tempfile.TemporaryDirectory() as folder:
        files = ProjectFiles(open_storage("file://" + folder), project.slug)
        files.ensure_layout()
        for name, data in batches.items():
            files.upload_bytes(TRAINING + name, data)
        clock = StageClock()
        with threadpool_limits(limits=THREADS):
            began, cpu = time.perf_counter(), time.process_time()
            result = train_project(files, project=project, execution_id="benchmark", version=1,
                                   reporter=clock)
            ended, cpu = time.perf_counter(), time.process_time() - cpu
    result["_cpu_seconds"] = cpu
    return result, ended - began, clock.durations(ended)


def read_batches(batches: dict[str, bytes], order: list[str]) -> pd.DataFrame:
    """The batch files read with plain pandas, in the platform's load order."""
    return pd.concat([pd.read_csv(io.BytesIO(batches[name])) for name in order],
                     ignore_index=True)


def rebuild_split(y: np.ndarray, split: dict) -> tuple[np.ndarray, np.ndarray]:
    """The platform's held-out split from the rule it recorded; checked against its digest."""
    train, test = train_test_split(np.arange(len(y)), test_size=split["test_size"],
                                   random_state=split["random_state"], shuffle=split["shuffle"],
                                   stratify=y if split["stratified"] else None)
    if index_digest(test) != split["test_index_sha256"]:
        raise SystemExit("The rebuilt held-out split differs from the platform's.")
    return train, test


def cv_splitter(cv: dict):
    kind = {"StratifiedKFold": StratifiedKFold, "KFold": KFold}[cv["method"].rsplit(".", 1)[1]]
    return kind(n_splits=cv["n_splits"], shuffle=cv["shuffle"], random_state=cv["random_state"])


def score(metric: str, actual: np.ndarray, predicted: np.ndarray) -> float:
    if metric == "rmse":
        return float(root_mean_squared_error(actual, predicted))
    return float(accuracy_score(actual, predicted))


def run_bare(batches: dict[str, bytes], result: dict, problem_type: str,
             metric: str) -> tuple[str, float, float, float]:
    """The same search in plain scikit-learn: read, split, CV every candidate, refit, score.

    Returns (chosen algorithm, held-out score, wall seconds, CPU seconds).
    """
    features = result["features"]["numeric"]
    split = result["split"]
    cv = result["metrics"]["cv"]
    with threadpool_limits(limits=THREADS), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        began, cpu = time.perf_counter(), time.process_time()
        frame = read_batches(batches, [f["name"] for f in result["data_fingerprint"]["files"]])
        frame = frame[frame["target"].notna()].reset_index(drop=True)
        X, y = frame[features], frame["target"].to_numpy()  # noqa: N806
        train, test = rebuild_split(y, split)
        X_train, X_test, y_train, y_test = X.iloc[train], X.iloc[test], y[train], y[test]  # noqa: N806
        multiclass = problem_type == "classification" and len(np.unique(y_train)) > 2
        scoring = SCORERS[metric][1 if multiclass else 0]
        splitter = cv_splitter(cv)
        best_name, best_mean, best_pipeline = None, -math.inf, None
        for candidate in candidate_models(problem_type, len(X_train)):
            steps = [("impute", SimpleImputer(strategy="median"))]
            if candidate.needs_scaling:
                steps.append(("scale", StandardScaler()))
            pipeline = Pipeline([*steps, ("model", clone(candidate.estimator))])
            scores = cross_validate(pipeline, X_train, y_train, cv=splitter, scoring=scoring,
                                    n_jobs=1)["test_score"]
            # scikit-learn scorers are "greater is better" (RMSE comes negated)
            if float(np.mean(scores)) > best_mean:
                best_name, best_mean, best_pipeline = candidate.name, float(np.mean(scores)), \
                    pipeline
        best_pipeline.fit(X_train, y_train)
        held_out = score(metric, y_test, best_pipeline.predict(X_test))
        seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    return best_name, held_out, seconds, cpu


def hgb_score(batches: dict[str, bytes], result: dict, problem_type: str, metric: str) -> float:
    """Default HistGradientBoosting on the platform's split (all feature columns)."""
    frame = read_batches(batches, [f["name"] for f in result["data_fingerprint"]["files"]])
    frame = frame[frame["target"].notna()].reset_index(drop=True)
    X, y = frame.drop(columns=["target"]), frame["target"].to_numpy()  # noqa: N806
    train, test = rebuild_split(y, result["split"])
    model = (HistGradientBoostingRegressor() if problem_type == "regression"
             else HistGradientBoostingClassifier())
    with threadpool_limits(limits=THREADS):
        model.fit(X.iloc[train], y[train])
    return score(metric, y[test], model.predict(X.iloc[test]))


def measure(name: str, repeats: int) -> Outcome:
    _, problem_type, metric = DATASETS[name]
    frame = dataset_frame(name)
    project = project_for(frame, problem_type, metric)
    batches = batch_files(frame)
    platform_times, bare_times, platform_cpu, bare_cpu = [], [], [], []
    result = stages = None
    bare = None
    for attempt in range(repeats):
        # alternate which side runs first, so that neither always gets the warmer caches
        order = ("platform", "bare") if attempt % 2 == 0 else ("bare", "platform")
        for side in order:
            if side == "platform":
                run_result, seconds, run_stages = run_platform(project, batches)
                if result is not None and run_result["split"] != result["split"]:
                    raise SystemExit("The platform's held-out split changed between runs.")
                if not platform_times or seconds < min(platform_times):
                    stages = run_stages
                result = run_result
                platform_times.append(seconds)
                platform_cpu.append(run_result.pop("_cpu_seconds"))
            else:  # the platform ran first in attempt 0, so its split is known
                bare = run_bare(batches, result, problem_type, metric)
                bare_times.append(bare[2])
                bare_cpu.append(bare[3])
    return Outcome(dataset=name, metric=metric, algorithm=result["algorithm"],
                   platform_score=float(result["metrics"][metric]),
                   hgb_score=hgb_score(batches, result, problem_type, metric),
                   platform_seconds=min(platform_times), bare_seconds=min(bare_times),
                   bare_algorithm=bare[0], bare_score=bare[1], stages=stages,
                   platform_cpu=min(platform_cpu), bare_cpu=min(bare_cpu))


def print_table(outcomes: list[Outcome]) -> None:
    header = (f"{'dataset':<14}{'metric':<9}{'Trainyard (chosen)':<38}{'HGB default':>12}"
              f"{'quality':>9}{'platform s':>12}{'bare s':>9}{'ratio':>7}{'speed':>7}"
              f"{'CPU ratio':>11}")
    print(header)
    print("-" * len(header))
    for o in outcomes:
        chosen = f"{o.platform_score:.4f} ({o.algorithm})"
        print(f"{o.dataset:<14}{o.metric:<9}{chosen:<38}{o.hgb_score:>12.4f}"
              f"{'PASS' if o.quality_ok else 'FAIL':>9}{o.platform_seconds:>12.2f}"
              f"{o.bare_seconds:>9.2f}{o.ratio:>7.2f}{'PASS' if o.speed_ok else 'FAIL':>7}"
              f"{o.platform_cpu / o.bare_cpu:>11.2f}")
    print()
    print(f"Targets: accuracy >= HGB - {MAX_ACCURACY_GAP:.2f}; RMSE <= HGB x "
          f"{1 + MAX_RMSE_EXCESS:.2f}; platform wall time <= {MAX_TIME_RATIO} x bare "
          "scikit-learn (the CPU-time ratio is shown for information: it is less sensitive to "
          "other load on the machine).")
    for o in outcomes:
        breakdown = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in o.stages.items())
        print(f"{o.dataset}: platform stages (s): {breakdown}; bare script chose "
              f"{o.bare_algorithm}, held-out {o.metric} {o.bare_score:.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated subset of {', '.join(DATASETS)}")
    parser.add_argument("--repeats", type=int, default=2,
                        help="timing runs per side; the best is kept (default 2)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        parser.error(f"unknown datasets {unknown}; choose among {', '.join(DATASETS)}")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    began = time.perf_counter()
    outcomes = []
    for name in names:
        outcomes.append(measure(name, args.repeats))
        print(f"measured {name} ({time.perf_counter() - began:.0f} s so far)", file=sys.stderr)
    print_table(outcomes)
    print(f"\nTotal benchmark time {time.perf_counter() - began:.0f} s "
          f"({THREADS} thread, {os.cpu_count()} CPUs).")
    failed = [o.dataset for o in outcomes if not (o.quality_ok and o.speed_ok)]
    if failed:
        print(f"FAILED targets on: {', '.join(failed)}")
        return 1
    print("All targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
