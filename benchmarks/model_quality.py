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
``--repeats`` runs (default 1), the platform and the bare script alternating. The exit status is 1
if a target fails (after printing everything).

With ``--baseline-commit REV`` it instead compares the platform's training at the working tree
with the same training at commit REV (extracted with ``git archive``), side by side in this run:
two worker processes of this script, one with each tree on ``sys.path`` and as ``cwd``, train
the same datasets on the same splits with the same seeds, alternating which goes first. Targets:
the same quality (mean held-out score within 1 accuracy point / 2 % RMSE of the baseline's; the
same seeds should give the same models) and the same cost (CPU seconds new/baseline <= 1.1, wall
seconds <= 1.25).

    .venv/bin/python benchmarks/model_quality.py [--datasets wine,digits] [--repeats 2]
    .venv/bin/python benchmarks/model_quality.py --baseline-commit 852d790 [--datasets wine]
"""

from __future__ import annotations

import os

# The worker caps the math libraries before numpy is imported; so does this script.
for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

# The code measured: the working tree, or (in a --baseline-commit worker) the baseline's tree.
CODE_ROOT = Path(os.environ.get("TRAINYARD_CODE_ROOT") or Path(__file__).resolve().parents[1])
sys.path.insert(0, str(CODE_ROOT))

import baseline  # noqa: E402  (benchmarks/baseline.py, beside this script)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn import datasets  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.ensemble import (  # noqa: E402
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    VotingClassifier,
    VotingRegressor,
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
    """One dataset measured on several held-out splits (one per shuffle of the rows)."""

    dataset: str
    metric: str
    algorithms: list[str]  # the platform's choice on each split
    platform_scores: list[float]
    hgb_scores: list[float]
    platform_seconds: list[float]
    bare_seconds: list[float]
    bare_algorithms: list[str]
    bare_scores: list[float]
    stages: dict[str, float]  # of the first split's fastest platform run
    platform_cpu: float
    bare_cpu: float

    @property
    def platform_score(self) -> float:
        return float(np.mean(self.platform_scores))

    @property
    def hgb_score(self) -> float:
        return float(np.mean(self.hgb_scores))

    @property
    def quality_ok(self) -> bool:
        if self.metric == "rmse":
            return self.platform_score <= self.hgb_score * (1 + MAX_RMSE_EXCESS)
        return self.platform_score >= self.hgb_score - MAX_ACCURACY_GAP

    @property
    def ratio(self) -> float:
        return sum(self.platform_seconds) / sum(self.bare_seconds)

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


def batch_files(frame: pd.DataFrame, seed: int = 0) -> dict[str, bytes]:
    """The frame, shuffled with ``seed``, as PARTS CSV batch files named like uploads (the
    platform's seeded split then holds out a different fifth of the rows for each seed)."""
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
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
    """The same search in plain scikit-learn: read, split, CV every candidate (keeping its
    fold predictions), score the soft-voting ensembles of the best 2 and 3 from those, refit
    the best, score it on the held-out rows.

    Returns (chosen algorithm, held-out score, wall seconds, CPU seconds).
    """
    features = result["features"]["numeric"]
    split = result["split"]
    cv = result["metrics"]["cv"]
    classification = problem_type == "classification"
    with threadpool_limits(limits=THREADS), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        began, cpu = time.perf_counter(), time.process_time()
        frame = read_batches(batches, [f["name"] for f in result["data_fingerprint"]["files"]])
        frame = frame[frame["target"].notna()].reset_index(drop=True)
        X, y = frame[features], frame["target"].to_numpy()  # noqa: N806
        train, test = rebuild_split(y, split)
        X_train, X_test, y_train, y_test = X.iloc[train], X.iloc[test], y[train], y[test]  # noqa: N806
        multiclass = classification and len(np.unique(y_train)) > 2
        scoring = SCORERS[metric][1 if multiclass else 0]
        splitter = cv_splitter(cv)
        scored = []  # (cv mean, name, pipeline, fold predictions, classes)
        folds = []
        for candidate in candidate_models(problem_type, len(X_train)):
            steps = [("impute", SimpleImputer(strategy="median"))]
            if candidate.needs_scaling:
                steps.append(("scale", StandardScaler()))
            pipeline = Pipeline([*steps, ("model", clone(candidate.estimator))])
            run = cross_validate(pipeline, X_train, y_train, cv=splitter, scoring=scoring,
                                 n_jobs=1, return_estimator=True, return_indices=True)
            folds = run["indices"]["test"]
            answers = [(fitted.predict_proba(X_train.iloc[rows]) if classification
                        else fitted.predict(X_train.iloc[rows]))
                       for fitted, rows in zip(run["estimator"], folds, strict=True)]
            # scikit-learn scorers are "greater is better" (RMSE comes negated)
            scored.append((float(np.mean(run["test_score"])), candidate.name, pipeline,
                           answers, run["estimator"][0].classes_ if classification else None))
        ranked = sorted(scored, key=lambda item: -item[0])
        choices = list(ranked)
        for size in (2, 3):
            members = ranked[:size]
            fold_scores = []
            for index, rows in enumerate(folds):
                mean = np.mean([m[3][index] for m in members], axis=0)
                if classification:
                    fold_scores.append(accuracy_score(y_train[rows],
                                                      members[0][4][np.argmax(mean, axis=1)]))
                else:
                    fold_scores.append(-root_mean_squared_error(y_train[rows], mean))
            estimators = [(m[1], clone(m[2])) for m in members]
            ensemble = (VotingClassifier(estimators, voting="soft") if classification
                        else VotingRegressor(estimators))
            choices.append((float(np.mean(fold_scores)),
                            "Ensemble: " + " + ".join(m[1] for m in members), ensemble, [], None))
        best = max(choices, key=lambda item: item[0])  # the first of equals: a single model
        best_name, best_pipeline = best[1], best[2]
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


def measure(name: str, splits: int, repeats: int) -> Outcome:
    _, problem_type, metric = DATASETS[name]
    frame = dataset_frame(name)
    project = project_for(frame, problem_type, metric)
    outcome = Outcome(dataset=name, metric=metric, algorithms=[], platform_scores=[],
                      hgb_scores=[], platform_seconds=[], bare_seconds=[], bare_algorithms=[],
                      bare_scores=[], stages={}, platform_cpu=0.0, bare_cpu=0.0)
    for seed in range(splits):
        batches = batch_files(frame, seed)
        platform_times, bare_times = [], []
        result = bare = None
        for attempt in range(repeats):
            # alternate which side runs first, so that neither always gets the warmer caches
            first = "platform" if (seed + attempt) % 2 == 0 or result is None else "bare"
            for side in (first, "bare" if first == "platform" else "platform"):
                if side == "platform":
                    run_result, seconds, run_stages = run_platform(project, batches)
                    if result is not None and run_result["split"] != result["split"]:
                        raise SystemExit("The platform's held-out split changed between runs.")
                    if seed == 0 and (not platform_times or seconds < min(platform_times)):
                        outcome.stages = run_stages
                    result = run_result
                    platform_times.append(seconds)
                    outcome.platform_cpu += run_result.pop("_cpu_seconds")
                else:  # the platform has run once before, so its split is known
                    bare = run_bare(batches, result, problem_type, metric)
                    bare_times.append(bare[2])
                    outcome.bare_cpu += bare[3]
        outcome.algorithms.append(result["algorithm"])
        outcome.platform_scores.append(float(result["metrics"][metric]))
        outcome.hgb_scores.append(hgb_score(batches, result, problem_type, metric))
        outcome.platform_seconds.append(min(platform_times))
        outcome.bare_seconds.append(min(bare_times))
        outcome.bare_algorithms.append(bare[0])
        outcome.bare_scores.append(bare[1])
    return outcome


def _chosen(algorithms: list[str]) -> str:
    counts = pd.Series(algorithms).value_counts()
    return ", ".join(f"{name} x{count}" if len(algorithms) > 1 else name
                     for name, count in counts.items())


def print_table(outcomes: list[Outcome]) -> None:
    splits = len(outcomes[0].platform_scores) if outcomes else 0
    print(f"Per held-out split (the rows shuffled with seeds 0..{splits - 1}; the platform's "
          "seeded split then holds out a different fifth):")
    for o in outcomes:
        pairs = "  ".join(f"{p:.4f}/{h:.4f}" for p, h in zip(o.platform_scores, o.hgb_scores,
                                                              strict=True))
        times = "  ".join(f"{p:.2f}/{b:.2f}" for p, b in zip(o.platform_seconds, o.bare_seconds,
                                                              strict=True))
        print(f"  {o.dataset:<14}{o.metric} Trainyard/HGB: {pairs}")
        print(f"  {'':<14}seconds platform/bare: {times}")
    print()
    header = (f"{'dataset':<14}{'metric':<9}{'Trainyard (mean)':>17}{'HGB (mean)':>12}"
              f"{'quality':>9}{'platform s':>12}{'bare s':>9}{'ratio':>7}{'speed':>7}"
              f"{'CPU ratio':>11}  chosen")
    print(header)
    print("-" * len(header))
    for o in outcomes:
        print(f"{o.dataset:<14}{o.metric:<9}{o.platform_score:>17.4f}{o.hgb_score:>12.4f}"
              f"{'PASS' if o.quality_ok else 'FAIL':>9}{sum(o.platform_seconds):>12.2f}"
              f"{sum(o.bare_seconds):>9.2f}{o.ratio:>7.2f}{'PASS' if o.speed_ok else 'FAIL':>7}"
              f"{o.platform_cpu / o.bare_cpu:>11.2f}  {_chosen(o.algorithms)}")
    print()
    print(f"Targets, on the means over the {splits} splits: accuracy >= HGB - "
          f"{MAX_ACCURACY_GAP:.2f}; RMSE <= HGB x {1 + MAX_RMSE_EXCESS:.2f}; platform wall time "
          f"(summed) <= {MAX_TIME_RATIO} x bare scikit-learn (the CPU-time ratio is shown for "
          "information: it is less sensitive to other load on the machine).")
    for o in outcomes:
        breakdown = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in o.stages.items())
        print(f"{o.dataset}: platform stages of split 0 (s): {breakdown}; bare script chose "
              f"{_chosen(o.bare_algorithms)}, mean held-out {o.metric} "
              f"{float(np.mean(o.bare_scores)):.4f}")


# -- side by side with a baseline commit (--baseline-commit) -------------------------------

def serve_trainings() -> int:
    """The worker of ``--baseline-commit``: for each JSON line ``{"dataset", "seed"}`` on stdin,
    train on that split with the code of ``CODE_ROOT`` and answer one JSON line on stdout."""
    answers = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # anything else the training prints goes to stderr
    frames: dict[str, pd.DataFrame] = {}
    for line in sys.stdin:
        ask = json.loads(line)
        name, seed = ask["dataset"], ask["seed"]
        _, problem_type, metric = DATASETS[name]
        frame = frames.setdefault(name, dataset_frame(name))
        result, seconds, stages = run_platform(project_for(frame, problem_type, metric),
                                               batch_files(frame, seed))
        answers.write(json.dumps({
            "algorithm": result["algorithm"], "score": float(result["metrics"][metric]),
            "seconds": seconds, "cpu": result["_cpu_seconds"], "split": result["split"],
            "stages": stages}) + "\n")
        answers.flush()
    return 0


class Trainer:
    """A worker process training with the code of one tree (its ``cwd`` and ``sys.path``)."""

    def __init__(self, root: Path, log: Path):
        self.log = log
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve-trainings"], cwd=root,
            env={**os.environ, "TRAINYARD_CODE_ROOT": str(root)}, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=open(log, "wb"), text=True)

    def train(self, dataset: str, seed: int) -> dict:
        self.proc.stdin.write(json.dumps({"dataset": dataset, "seed": seed}) + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline()
        if not answer:
            raise SystemExit(f"a training worker failed; its log:\n"
                             f"{self.log.read_text(errors='replace')[-3000:]}")
        return json.loads(answer)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


@dataclass
class Pair:
    """One dataset trained by the working tree ("new") and the baseline on the same splits."""

    dataset: str
    metric: str
    runs: dict[str, list[dict]]  # side -> the kept (fastest) run of each split
    cpu: dict[str, float]  # side -> CPU seconds of all its runs

    def scores(self, side: str) -> list[float]:
        return [run["score"] for run in self.runs[side]]

    def mean(self, side: str) -> float:
        return float(np.mean(self.scores(side)))

    def seconds(self, side: str) -> float:
        return sum(run["seconds"] for run in self.runs[side])

    @property
    def same_models(self) -> int:
        """Splits on which both chose the same model with the same held-out score."""
        return sum(a["algorithm"] == b["algorithm"] and a["score"] == b["score"]
                   for a, b in zip(self.runs["new"], self.runs["baseline"], strict=True))

    @property
    def quality_ok(self) -> bool:
        if self.metric == "rmse":
            return self.mean("new") <= self.mean("baseline") * (1 + MAX_RMSE_EXCESS)
        return self.mean("new") >= self.mean("baseline") - MAX_ACCURACY_GAP

    @property
    def wall_ratio(self) -> float:
        return baseline.ratio(self.seconds("new"), self.seconds("baseline"))

    @property
    def cpu_ratio(self) -> float:
        return baseline.ratio(self.cpu["new"], self.cpu["baseline"])

    @property
    def speed_ok(self) -> bool:
        return (self.cpu_ratio <= baseline.MAX_CPU_RATIO
                and self.wall_ratio <= baseline.MAX_WALL_RATIO)


def measure_pair(name: str, splits: int, repeats: int, trainers: dict[str, Trainer]) -> Pair:
    pair = Pair(dataset=name, metric=DATASETS[name][2], runs={"new": [], "baseline": []},
                cpu={"new": 0.0, "baseline": 0.0})
    for seed in range(splits):
        runs: dict[str, list[dict]] = {"new": [], "baseline": []}
        for attempt in range(repeats):
            order = ("new", "baseline") if (seed + attempt) % 2 == 0 else ("baseline", "new")
            for side in order:
                run = trainers[side].train(name, seed)
                runs[side].append(run)
                pair.cpu[side] += run["cpu"]
        for side, done in runs.items():
            pair.runs[side].append(min(done, key=lambda run: run["seconds"]))
        if pair.runs["new"][-1]["split"] != pair.runs["baseline"][-1]["split"]:
            print(f"{name}, split {seed}: the two trees held out different rows", flush=True)
    return pair


def print_comparison(pairs: list[Pair], short: str) -> None:
    splits = len(pairs[0].runs["new"]) if pairs else 0
    print(f"Per held-out split (seeds 0..{splits - 1}), working tree / baseline {short}:")
    for p in pairs:
        scores = "  ".join(f"{a:.4f}/{b:.4f}" for a, b in zip(p.scores("new"),
                                                              p.scores("baseline"), strict=True))
        times = "  ".join(f"{a['seconds']:.2f}/{b['seconds']:.2f}"
                          for a, b in zip(p.runs["new"], p.runs["baseline"], strict=True))
        cpu = "  ".join(f"{a['cpu']:.2f}/{b['cpu']:.2f}"
                        for a, b in zip(p.runs["new"], p.runs["baseline"], strict=True))
        print(f"  {p.dataset:<14}{p.metric}: {scores}")
        print(f"  {'':<14}seconds: {times}")
        print(f"  {'':<14}CPU seconds: {cpu}")
    print()
    header = (f"{'dataset':<14}{'metric':<9}{'new (mean)':>11}{'base (mean)':>12}{'same':>6}"
              f"{'quality':>9}{'new s':>8}{'base s':>8}{'ratio':>7}{'CPU ratio':>10}"
              f"{'speed':>7}  chosen (new)")
    print(header)
    print("-" * len(header))
    for p in pairs:
        print(f"{p.dataset:<14}{p.metric:<9}{p.mean('new'):>11.4f}{p.mean('baseline'):>12.4f}"
              f"{f'{p.same_models}/{splits}':>6}{'PASS' if p.quality_ok else 'FAIL':>9}"
              f"{p.seconds('new'):>8.2f}{p.seconds('baseline'):>8.2f}{p.wall_ratio:>7.2f}"
              f"{p.cpu_ratio:>10.2f}{'PASS' if p.speed_ok else 'FAIL':>7}  "
              f"{_chosen([run['algorithm'] for run in p.runs['new']])}")
    print()
    print(f"No regression beyond noise means, per dataset: mean held-out score within "
          f"{MAX_ACCURACY_GAP:.2f} accuracy / {MAX_RMSE_EXCESS:.0%} RMSE of the baseline's "
          f"(\"same\": splits with the same model and score; the same seeds should give the "
          f"same models), CPU seconds new/baseline <= {baseline.MAX_CPU_RATIO} and summed wall "
          f"seconds <= {baseline.MAX_WALL_RATIO} (wall time moves more with other load).")
    for p in pairs:
        for side in ("new", "baseline"):
            stages = ", ".join(f"{stage} {seconds:.2f}"
                               for stage, seconds in p.runs[side][0]["stages"].items())
            print(f"{p.dataset}, {side}: stages of split 0 (s): {stages}")


def compare(names: list[str], splits: int, repeats: int, rev: str) -> int:
    began = time.perf_counter()
    with baseline.checkout(rev) as (folder, short), tempfile.TemporaryDirectory() as logs:
        trainers = {"new": Trainer(baseline.ROOT, Path(logs) / "new.log"),
                    "baseline": Trainer(folder, Path(logs) / "baseline.log")}
        try:
            for side, trainer in trainers.items():  # untimed: imports, lazy loads, caches
                print(f"warm-up training ({side})", file=sys.stderr)
                trainer.train(names[0], 0)
            pairs = []
            for name in names:
                pairs.append(measure_pair(name, splits, repeats, trainers))
                print(f"measured {name} ({time.perf_counter() - began:.0f} s so far)",
                      file=sys.stderr)
        finally:
            for trainer in trainers.values():
                trainer.close()
    print_comparison(pairs, short)
    print(f"\nTotal benchmark time {time.perf_counter() - began:.0f} s ({THREADS} thread, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end).")
    failed = [p.dataset for p in pairs if not (p.quality_ok and p.speed_ok)]
    if failed:
        print(f"FAILED targets on: {', '.join(failed)}")
        return 1
    print(f"No regression against {short} beyond noise.")
    return 0


# -- the sandbox on and off (--sandbox) -------------------------------------------------------

def sandboxed_training(payload: dict, reporter) -> dict:
    """In a worker process started by ``thread_layer.sandbox.launch``: write the batch files
    into its scratch storage and train, as a training execution does."""
    project = Project.from_document(payload["project"])
    files = ProjectFiles(open_storage(payload["storage_uri"]), project.slug)
    files.ensure_layout()
    for name, text in payload["batches"].items():
        files.upload_bytes(TRAINING + name, text.encode("utf-8"))
    began, cpu = time.perf_counter(), time.process_time()
    result = train_project(files, project=project, execution_id="benchmark", version=1,
                           reporter=reporter)
    return {"seconds": time.perf_counter() - began, "cpu": time.process_time() - cpu,
            "algorithm": result["algorithm"]}


def run_in_worker(report, project: Project, batches: dict[str, bytes]) -> dict:
    """One training in a worker process under ``report``'s isolation; (wall of the whole
    process, training seconds inside)."""
    from thread_layer import sandbox

    payload = {"run": "model_quality:sandboxed_training", "sys_path": sys.path,
               "project": project.to_document(), "threads": THREADS,
               "batches": {name: data.decode("utf-8") for name, data in batches.items()}}
    with tempfile.TemporaryDirectory(prefix="trainyard-bench-") as folder:
        scratch = Path(folder) / "scratch"
        payload["storage_uri"] = (scratch / "storage").as_uri()
        began = time.perf_counter()
        box = sandbox.launch("thread_layer.sandbox_worker", payload, limits=sandbox.Limits(),
                             report=report, scratch=scratch, threads=THREADS)
        outcome = None
        try:
            while outcome is None:
                messages = box.messages(0.05)
                if messages is None:
                    break
                for message in messages:
                    if message[0] in ("result", "error"):
                        outcome = message
        finally:
            box.close()
        wall = time.perf_counter() - began
    if outcome is None or outcome[0] != "result":
        raise RuntimeError(f"the sandboxed training failed: {outcome}")
    return {"wall": wall, **outcome[1]}


def compare_sandbox(names: list[str], splits: int, repeats: int) -> int:
    """The same trainings in a worker process with the sandbox off and on, side by side."""
    from thread_layer import sandbox

    on = sandbox.detect("auto")
    off = sandbox.SandboxReport(mode="off")
    print(on.summary())
    rows = []
    for name in names:
        _loader, problem_type, metric = DATASETS[name]
        frame = dataset_frame(name)
        project = project_for(frame, problem_type, metric)
        # per side: the sum over the splits of the best of the repeats
        best = {"off": {"wall": 0.0, "seconds": 0.0}, "on": {"wall": 0.0, "seconds": 0.0}}
        for split in range(splits):
            batches = batch_files(frame, seed=split)
            runs: dict[str, list[dict]] = {"off": [], "on": []}
            for repeat in range(repeats):
                order = [("off", off), ("on", on)]
                if (split + repeat) % 2:
                    order.reverse()  # alternate which side goes first
                for side, report in order:
                    runs[side].append(run_in_worker(report, project, batches))
            for side, got in runs.items():
                best[side]["wall"] += min(g["wall"] for g in got)
                best[side]["seconds"] += min(g["seconds"] for g in got)
        rows.append((name, best))
        print(f"measured {name}", file=sys.stderr)
    print(f"\n{'dataset':<14}{'off train s':>12}{'on train s':>12}{'ratio':>8}"
          f"{'off wall s':>12}{'on wall s':>12}{'ratio':>8}")
    worst = 0.0
    for name, best in rows:
        off_s, on_s = best["off"]["seconds"], best["on"]["seconds"]
        off_w, on_w = best["off"]["wall"], best["on"]["wall"]
        ratio, wall_ratio = on_s / off_s, on_w / off_w
        worst = max(worst, ratio)
        print(f"{name:<14}{off_s:>12.2f}{on_s:>12.2f}{ratio:>8.3f}{off_w:>12.2f}{on_w:>12.2f}"
              f"{wall_ratio:>8.3f}")
    print(f"\nTarget: training time with the sandbox on / off <= 1.05 (worst {worst:.3f}); "
          "wall includes each worker's start (bwrap, imports).")
    return 0 if worst <= 1.05 else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default=",".join(DATASETS),
                        help=f"comma-separated subset of {', '.join(DATASETS)}")
    parser.add_argument("--splits", type=int, default=5,
                        help="held-out splits per dataset, one per shuffle of the rows "
                             "(default 5)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timing runs per side and split; the best is kept (default 1)")
    parser.add_argument("--baseline-commit", metavar="REV",
                        help="compare the platform's training with that of commit REV, "
                             "side by side, instead of with HGB and bare scikit-learn")
    parser.add_argument("--sandbox", action="store_true",
                        help="compare the training in a worker process with the sandbox "
                             "(bwrap, no network, own uid, limits) off and on, side by side")
    parser.add_argument("--serve-trainings", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_trainings:
        return serve_trainings()
    names = [n.strip() for n in args.datasets.split(",") if n.strip()]
    unknown = [n for n in names if n not in DATASETS]
    if unknown or not names:
        parser.error(f"unknown datasets {unknown}; choose among {', '.join(DATASETS)}")
    if args.repeats < 1 or args.splits < 1:
        parser.error("--splits and --repeats must be at least 1")
    if args.sandbox:
        return compare_sandbox(names, args.splits, args.repeats)
    if args.baseline_commit:
        return compare(names, args.splits, args.repeats, args.baseline_commit)
    began = time.perf_counter()
    outcomes = []
    for name in names:
        outcomes.append(measure(name, args.splits, args.repeats))
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
