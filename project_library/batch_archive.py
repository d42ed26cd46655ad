"""Validating a folder of batch files and archiving them for one execution.

Bad files are moved to ``archive/<execution>/bad/`` (they must be fixed and uploaded again),
good ones copied to ``archive/<execution>/good/`` (so the execution's input stays on record), and
``archive/<execution>/validation_report.json`` lists the verdict on every file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from entity.project import BatchSchema
from integration.file_manager import ARCHIVE, ProjectFiles
from project_library.reporting import AllFilesInvalid, NoBatchFiles, Reporter
from project_library.schema_validation import FileReport, check_batch_file

STAGE = "validating"


@dataclass
class GoodBatch:
    """A batch file that passed validation."""

    name: str  # path relative to its batch folder
    sha256: str
    frame: pd.DataFrame  # typed
    raw: pd.DataFrame  # the cells as written in the file


@dataclass
class BatchIntake:
    good: list[GoodBatch]
    reports: list[FileReport]


def row_keys(frame: pd.DataFrame):
    """One 64-bit hash per row of ``frame`` over its values (columns in name order): equal
    rows get equal keys, whichever file they came from."""
    return pd.util.hash_pandas_object(frame[sorted(frame.columns)], index=False).to_numpy()


def _repeats(frame: pd.DataFrame, name: str, seen: dict) -> dict[str, int]:
    """Count the rows of ``frame`` already seen in earlier files (per earlier file) and add
    this file's rows to ``seen`` (row key -> the first file holding it)."""
    earlier: dict[str, int] = {}
    for key in row_keys(frame):
        first = seen.setdefault(int(key), name)
        if first != name:
            earlier[first] = earlier.get(first, 0) + 1
    return earlier


def add_to_validation_report(files: ProjectFiles, execution_id: str, key: str, value) -> None:
    """Add ``key`` (what a later stage found about the data, e.g. the column warnings of
    training) to the execution's ``validation_report.json``."""
    path = f"{archive_folder(execution_id)}validation_report.json"
    report = json.loads(files.read_bytes(path))
    report[key] = value
    files.upload_bytes(path, json.dumps(report, indent=2).encode("utf-8"))


def archive_folder(execution_id: str) -> str:
    """``archive/<execution_id>/``."""
    return f"{ARCHIVE}{execution_id}/"


def validate_and_archive(files: ProjectFiles, *, folder: str, schema: BatchSchema,
                         execution_id: str, require_target: bool, reporter: Reporter,
                         progress: Callable[[float], None], purpose: str) -> BatchIntake:
    """Validate every file below ``folder`` and archive each as good or bad.

    Args:
        files: the project's files.
        folder: the batch folder (``training_batch_files/`` or ``prediction_batch_files/``).
        schema: the schema the files must follow.
        execution_id: names the archive folder.
        require_target: True for training files.
        reporter: receives one line per file (and the reasons of bad files).
        progress: called with the fraction (0..1) of files done.
        purpose: "training" or "prediction", for messages.

    Raises:
        NoBatchFiles: the folder holds no file.
        AllFilesInvalid: every file broke the schema.
    """
    listed = [info for info in files.list_files(folder) if not info.key.endswith("/")]
    if not listed:
        raise NoBatchFiles(f"no {purpose} batch files found in {folder}")
    reporter.log(f"Validating {len(listed)} {purpose} files against the schema.", stage=STAGE)
    archive = archive_folder(execution_id)
    good: list[GoodBatch] = []
    reports: list[FileReport] = []
    seen: dict[int, str] = {}  # training: row key -> first file (repeats across files)
    for index, info in enumerate(listed):
        name = info.key[len(folder):]
        data = files.read_bytes(info.key)
        checked = check_batch_file(name, data, schema, require_target=require_target)
        report = checked.report
        reports.append(report)
        if report.ok:
            files.copy(info.key, f"{archive}good/{name}")
            good.append(GoodBatch(name, hashlib.sha256(data).hexdigest(), checked.frame,
                                  checked.raw))
            if require_target and (earlier := _repeats(checked.frame, name, seen)):
                count = sum(earlier.values())
                report.warnings.append(
                    f"{count} row{'s' if count != 1 else ''} repeat rows of "
                    f"{', '.join(earlier)}; they are kept on the training side of the "
                    "held-out split, so that the test rows are new to the model")
            note = f"; {'; '.join(report.warnings)}" if report.warnings else ""
            reporter.log(f"{name}: ok, {report.rows} rows{note}", stage=STAGE,
                         level="WARNING" if report.warnings else "INFO")
        else:
            files.move(info.key, f"{archive}bad/{name}")
            reporter.log(f"{name}: rejected and moved to {archive}bad/ - "
                         f"{'; '.join(report.reasons)}", stage=STAGE, level="WARNING")
        progress((index + 1) / len(listed))
    report_path = f"{archive}validation_report.json"
    files.upload_bytes(report_path, json.dumps(
        {"execution_id": execution_id, "folder": folder, "schema": schema.to_dict(),
         "files": [r.to_dict() for r in reports]}, indent=2).encode("utf-8"))
    bad = len(reports) - len(good)
    if not good:
        raise AllFilesInvalid(f"all {len(reports)} {purpose} files broke the schema; see "
                              f"{report_path}")
    reporter.log(f"{len(good)} files are valid, {bad} rejected; report in {report_path}",
                 stage=STAGE, level="WARNING" if bad else "INFO")
    return BatchIntake(good=good, reports=reports)
