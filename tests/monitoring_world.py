"""A project with a model version and a reference profile, and prediction records of a known
shape, for the monitoring tests: no training runs (the profile is made from a known frame the
way training makes it, and saved with its checksum the way training saves it)."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from entity.base import to_iso
from entity.model_version import ModelVersion
from entity.project import BatchSchema, ColumnSpec, Project
from project_library import drift
from project_library.model_artifacts import REFERENCE_PROFILE_FILE, sha256_hex, version_folder
from project_library.preprocessing import FeaturePlan

TRAINING_ACCURACY = 0.9


def training_frame(n: int = 2000, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": rng.normal(0, 1, n), "c": rng.choice(["a", "b", "c"], n)})
    y = np.where(frame["x"] > 0, "yes", "no")
    return frame, y


def make_project(db, resolver, owner, *, name: str = "Monitored",
                 recipients: tuple[str, ...] = ("team@example.com",)) -> Project:
    """A classification project (features ``x`` numeric, ``c`` categorical; target ``y``)
    whose version 1 is active and carries a reference profile."""
    schema = BatchSchema(filename_pattern=r"^m_\d+\.csv$",
                         columns=[ColumnSpec("x", "float"), ColumnSpec("c", "category"),
                                  ColumnSpec("y", "category")], target="y")
    project = Project(name=name, slug=name.lower().replace(" ", "-"),
                      problem_type="classification", schema=schema, owner_id=owner.id,
                      recipients=list(recipients), active_version=1, next_version=2)
    db.projects.add(project)
    files = resolver.files(project)
    files.ensure_layout()
    frame, y = training_frame()
    profile = drift.reference_profile(frame, FeaturePlan(numeric=["x"], one_hot=["c"]))
    profile["prediction"] = drift.target_profile(y, "classification")
    data = json.dumps(profile).encode()
    files.upload_bytes(version_folder(1) + REFERENCE_PROFILE_FILE, data)
    db.model_versions.add(ModelVersion(
        project_id=project.id, version=1, execution_id="e1", algorithm="LogisticRegression",
        metrics={"accuracy": TRAINING_ACCURACY, "f1_macro": 0.88},
        artifacts={REFERENCE_PROFILE_FILE: sha256_hex(data)}, problem_type="classification"))
    return project


def records(project: Project, n: int, *, start: datetime, shift: float = 0.0,
            accuracy: float | None = None, labeled: int = 0, version: int = 1,
            seed: int = 1, spread: timedelta = timedelta(hours=1)) -> list[dict]:
    """``n`` prediction records from ``start`` over ``spread``: ``x`` drawn from N(shift, 1);
    the first ``labeled`` carry an actual value that matches the output for a share
    ``accuracy`` of them exactly."""
    rng = np.random.default_rng(seed)
    x = rng.normal(shift, 1, n)
    c = rng.choice(["a", "b", "c"], n)
    right = int(round((accuracy or 0) * labeled))
    docs = []
    for i in range(n):
        output = "yes" if x[i] > 0 else "no"
        actual = None
        if i < labeled:
            actual = output if i < right else ("no" if output == "yes" else "yes")
        p_yes = float(1 / (1 + np.exp(-3 * x[i])))
        docs.append({"_id": uuid.uuid4().hex, "project_id": project.id, "version": version,
                     "source": "realtime", "execution_id": None,
                     "created_at": to_iso(start + spread * (i / max(n, 1))),
                     "inputs": {"x": float(x[i]), "c": str(c[i])}, "output": output,
                     "probabilities": {"no": 1 - p_yes, "yes": p_yes},
                     "latency_ms": float(1 + (i % 10)), "actual": actual,
                     "labeled_at": to_iso(start) if actual is not None else None,
                     "shadow": None})
    return docs


def insert_records(db, docs: list[dict]) -> None:
    """Store records as the model server and the batch predictions do."""
    db.prediction_records.add_many(docs)
