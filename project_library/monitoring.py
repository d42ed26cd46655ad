"""Live monitoring of one model version: its prediction records of a period, aggregated batch
by batch into the numbers a monitor point holds.

A :class:`VersionMonitor` is fed column batches of prediction records (as
``entity.store.Collection.scan`` reads them: only the fields it names, a few thousand rows at
a time) and keeps counts only: the rows of each profiled feature and of the predictions in the
bins of the version's reference profile (``project_library.drift``), a latency histogram, the
volume by source, and the labeled rows' actual and predicted values (the metrics need them
whole, and labeled rows are the few). :meth:`VersionMonitor.result` turns them into drift (PSI
and a binned test per feature and for the predictions), latency percentiles and, on labeled
feedback, the project's metric and the other standard ones, as ``project_library.evaluation``
computes them at training.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from project_library import drift

#: the record fields every monitor reads, in this order, before the features' inputs
RECORD_FIELDS = ("version", "source", "created_at", "output", "latency_ms")
#: the fields read from the labeled records only (the few), for the metrics
LABELED_FIELDS = ("version", "output", "actual", "probabilities")
#: latency buckets: as the model server's (relative width 2^(1/16), from 0.01 ms)
_BUCKET_RATIO = 2 ** (1 / 16)
_BUCKET_FLOOR_MS = 0.01
_BUCKETS = 1024
#: the fewest labeled rows a metric is reported on
MIN_LABELED = 1


def record_fields(profile: dict | None) -> list:
    """The paths of the record fields a monitor over ``profile`` reads."""
    features = (profile or {}).get("features", {})
    return [*RECORD_FIELDS, *(("inputs", name) for name in features)]


def _percentiles(histogram: np.ndarray) -> dict:
    total = int(histogram.sum())
    if not total:
        return {}
    cumulative = np.cumsum(histogram)
    found = {}
    for q in (50, 95, 99):
        bucket = int(np.searchsorted(cumulative, max(1, math.ceil(total * q / 100))))
        found[f"p{q}"] = round(_BUCKET_FLOOR_MS * _BUCKET_RATIO ** (bucket + 0.5), 2)
    return found


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 6) if math.isfinite(value) else None


class VersionMonitor:
    """The aggregates of one model version over one period.

    Args:
        profile: the version's reference profile (``reference_profile.json``), or None when it
            has none (drift is then not computed).
        problem_type: ``classification`` or ``regression``.
    """

    def __init__(self, profile: dict | None, problem_type: str):
        self.profile = profile or {}
        self.problem_type = problem_type
        self.features = dict(self.profile.get("features", {}))
        self.prediction_spec = self.profile.get("prediction")
        self.counts = {name: np.zeros(len(spec["shares"])) for name, spec in
                       self.features.items()}
        self.prediction_counts = (np.zeros(len(self.prediction_spec["shares"]))
                                  if self.prediction_spec else None)
        self.rows = 0
        self.by_source: dict[str, int] = {}
        self.latency = np.zeros(_BUCKETS, dtype="int64")
        self.first_at: str | None = None
        self.last_at: str | None = None
        self.actual: list = []
        self.predicted: list = []
        self.probabilities: list = []

    def add(self, columns: dict[str, list]) -> None:
        """Count one batch of records, given as columns: each of :data:`RECORD_FIELDS` and
        ``inputs.<feature>`` for the profiled features, one list each of the same length (the
        labeled ones come again through :meth:`add_labeled`)."""
        n = len(columns["output"])
        if not n:
            return
        self.rows += n
        for source in set(columns["source"]):
            self.by_source[str(source)] = self.by_source.get(str(source), 0) + \
                columns["source"].count(source)
        times = [t for t in columns["created_at"] if t]
        if times:
            low, high = min(times), max(times)
            self.first_at = low if self.first_at is None else min(self.first_at, low)
            self.last_at = high if self.last_at is None else max(self.last_at, high)
        latency = np.array([v for v in columns["latency_ms"] if isinstance(v, (int, float))],
                           dtype="float64")
        if len(latency):
            buckets = np.floor(np.log(np.maximum(latency, _BUCKET_FLOOR_MS) / _BUCKET_FLOOR_MS)
                               / math.log(_BUCKET_RATIO)).astype("int64")
            self.latency += np.bincount(np.clip(buckets, 0, _BUCKETS - 1), minlength=_BUCKETS)
        for name, spec in self.features.items():
            self.counts[name] += drift.bin_counts(spec, columns[f"inputs.{name}"])
        if self.prediction_spec:
            self.prediction_counts += drift.bin_counts(self.prediction_spec, columns["output"])

    def add_labeled(self, columns: dict[str, list]) -> None:
        """Keep one batch of labeled records (:data:`LABELED_FIELDS`, as columns) for the
        metrics."""
        for output, actual, probabilities in zip(columns["output"], columns["actual"],
                                                 columns["probabilities"], strict=True):
            if actual is not None:
                self.actual.append(actual)
                self.predicted.append(output)
                self.probabilities.append(probabilities)

    # -- results ------------------------------------------------------------------------

    def _drift_of(self, spec: dict, counts: np.ndarray) -> dict | None:
        if not counts.sum():
            return None
        shares = [float(c / counts.sum()) for c in counts]
        psi = drift.population_stability_index(spec["shares"], shares)
        psi = round(psi, 4) if math.isfinite(psi) else None
        judged = counts.sum() >= drift.MIN_ROWS and psi is not None
        return {"psi": psi, "status": drift.drift_status(psi) if judged else
                "insufficient_data", "rows": int(counts.sum()),
                **drift.binned_test(spec, int(self.profile.get("rows") or 0), counts)}

    def drift(self) -> dict:
        """``{"features": {name: {"psi", "status", "rows", "test", "statistic",
        "p_value"}}, "prediction": {...} | None, "drifted": [names], "max_psi"}``."""
        features = {}
        for name, spec in self.features.items():
            found = self._drift_of(spec, self.counts[name])
            if found is not None:
                features[name] = found
        prediction = (self._drift_of(self.prediction_spec, self.prediction_counts)
                      if self.prediction_spec else None)
        judged = [f["psi"] for f in features.values()
                  if f["status"] != "insufficient_data" and f["psi"] is not None]
        return {"features": features, "prediction": prediction,
                "drifted": [n for n, f in features.items() if f["status"] == "drift"],
                "max_psi": max(judged) if judged else None}

    def metrics(self) -> dict:
        """The standard metrics on the labeled rows (empty with none)."""
        if len(self.actual) < MIN_LABELED:
            return {}
        from project_library.evaluation import classification_metrics

        if self.problem_type == "classification":
            actual = np.array([str(v) for v in self.actual], dtype=object)
            predicted = np.array([str(v) for v in self.predicted], dtype=object)
            labels = sorted({*actual, *predicted} | {
                str(k) for p in self.probabilities if isinstance(p, dict) for k in p})
            proba = None
            if all(isinstance(p, dict) for p in self.probabilities):
                proba = np.array([[float(p.get(label, 0.0)) for label in labels]
                                  for p in self.probabilities])
            with warnings.catch_warnings():  # a class missing from the feedback: no AUC
                warnings.simplefilter("ignore")
                found = classification_metrics(labels, actual, predicted, proba)
            found.pop("confusion_matrix", None)
            found.pop("labels", None)
            found["f1"] = found.get("f1_macro")
        else:
            actual = np.array([float(v) for v in self.actual])
            predicted = np.array([float(v) for v in self.predicted])
            errors = predicted - actual
            mse = float(np.mean(errors ** 2))
            spread = float(np.sum((actual - actual.mean()) ** 2))
            found = {"mse": mse, "rmse": math.sqrt(mse), "mae": float(np.mean(np.abs(errors))),
                     "r2": 1 - float(np.sum(errors ** 2)) / spread if spread else None}
        return {name: _finite(value) for name, value in found.items()
                if value is None or isinstance(value, (int, float))}

    def result(self) -> dict:
        """What a monitor point stores about this version's period."""
        return {"volume": {"predictions": int(self.rows), "labeled": len(self.actual),
                           **{f"source_{k}": v for k, v in sorted(self.by_source.items())}},
                "first_at": self.first_at, "last_at": self.last_at,
                "latency_ms": _percentiles(self.latency),
                "metrics": self.metrics(), "drift": self.drift()}


def columns_of(rows: list[tuple], fields: list) -> dict[str, list]:
    """A batch of scanned rows (tuples in the order of ``fields``) as named columns."""
    names = [f if isinstance(f, str) else ".".join(f) for f in fields]
    if not rows:
        return {name: [] for name in names}
    return {name: list(values) for name, values in zip(names, zip(*rows, strict=True),
                                                          strict=True)}
