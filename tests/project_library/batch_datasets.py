"""Batch files made from the datasets bundled with scikit-learn, and projects around them.

Kept out of ``conftest.py`` so that test modules import them by a name no other test folder
uses.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
from sklearn import datasets

from entity.project import BatchSchema, ColumnSpec, Project
from integration.file_manager import ProjectFiles

PATTERN = r"^batch_\d{8}_\d{6}\.csv$"


def batch_name(index: int) -> str:
    """A file name matching :data:`PATTERN`."""
    return f"batch_2024010{index + 1}_120000.csv"


def dataset_frame(name: str) -> pd.DataFrame:
    """A bundled dataset as one frame whose last column is the target ``target``."""
    loader = {"breast_cancer": datasets.load_breast_cancer, "wine": datasets.load_wine,
              "diabetes": datasets.load_diabetes, "digits": datasets.load_digits}[name]
    bunch = loader(as_frame=True)
    frame = bunch.frame.copy()
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    return frame


def schema_for(frame: pd.DataFrame, *, target: str = "target",
               types: dict[str, str] | None = None) -> BatchSchema:
    """The schema of ``frame``: float features unless ``types`` says otherwise."""
    types = types or {}
    columns = []
    for name in frame.columns:
        if name in types:
            kind = types[name]
        elif name == target:
            kind = "integer" if pd.api.types.is_integer_dtype(frame[name]) else "float"
        else:
            kind = "integer" if pd.api.types.is_integer_dtype(frame[name]) else "float"
        columns.append(ColumnSpec(name, kind))
    return BatchSchema(filename_pattern=PATTERN, columns=columns, target=target).validate()


def make_project(schema: BatchSchema, problem_type: str, **extra) -> Project:
    return Project(name="Demo", slug="demo", problem_type=problem_type, schema=schema,
                   owner_id="u1", **extra)


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode("utf-8")


def write_batches(files: ProjectFiles, frame: pd.DataFrame, folder: str, parts: int = 3,
                  *, seed: int = 0) -> list[str]:
    """Shuffle ``frame``, split it into ``parts`` batch files in ``folder``; return the names."""
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    names = []
    for index, part in enumerate(np.array_split(np.arange(len(shuffled)), parts)):
        name = batch_name(index)
        files.upload_bytes(folder + name, csv_bytes(shuffled.iloc[part]))
        names.append(name)
    return names
