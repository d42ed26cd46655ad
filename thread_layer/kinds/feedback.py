"""Feedback: takes the label files of the ``feedback/`` folder into the prediction records.

Each CSV file there has a ``prediction_id`` column and the project's target column. The worker
validates the files against that schema like any batch file (bad files go to
``archive/<execution>/bad/`` with their reasons, good ones are copied to ``.../good/``) and reads
their labels; the supervisor, which holds the database, joins them to the predictions
(:func:`thread_layer.feedback.record_labels`: unknown, foreign, repeated and wrongly typed
labels are refused with a reason each, every good one is kept) and removes each good file from
``feedback/`` so it is not taken twice. Starting it is an editor's action, as an upload is.
"""

from __future__ import annotations

import contextlib

from integration.file_manager import FEEDBACK
from thread_layer.kinds import RESULT, ExecutionKind
from thread_layer.worker import project_files

#: refused labels listed in the result (all are counted)
MAX_LISTED_REJECTIONS = 1000


def run(payload: dict, reporter) -> dict:
    """In the worker process: validate the feedback files and read their labels."""
    from entity.project import Project
    from project_library.batch_archive import validate_and_archive
    from project_library.feedback import feedback_schema, frame_labels

    project = Project.from_document(payload["project"])
    files = project_files(payload)
    intake = validate_and_archive(
        files, folder=FEEDBACK, schema=feedback_schema(project.schema),
        execution_id=payload["execution_id"], require_target=True, reporter=reporter,
        progress=lambda f: reporter.progress("validating", int(50 * f)), purpose="feedback")
    reporter.progress("joining", 50)
    return {"files": [{"name": batch.name,
                       "labels": frame_labels(batch.frame, project.schema.target)}
                      for batch in intake.good],
            "validation": [r.to_dict() for r in intake.reports]}


def finalize(runner, execution, project, result: dict, logger) -> dict:
    """Join each good file's labels to the predictions, then take the file out of
    ``feedback/`` (its copy stays in the archive)."""
    from thread_layer.feedback import record_labels

    accepted, rejected, refused = 0, [], 0
    files = runner.resolver.files(project)
    for entry in result.get("files", []):
        joined = record_labels(runner.db, runner, project,
                               [tuple(label) for label in entry["labels"]])
        accepted += joined.accepted
        refused += len(joined.rejected)
        rejected += [{"file": entry["name"], **r} for r in joined.rejected]
        logger.log(f"{entry['name']}: {joined.accepted} labels kept, {len(joined.rejected)} "
                   "refused.", stage="joining",
                   level="WARNING" if joined.rejected else "INFO")
        for r in joined.rejected[:5]:
            logger.log(f"{entry['name']} row {r['row']}: {r['reason']}", stage="joining",
                       level="WARNING")
        with contextlib.suppress(Exception):  # taken already: keep the labels regardless
            files.delete(FEEDBACK + entry["name"])
    return {"accepted": accepted, "rejected_count": refused,
            "rejected": rejected[:MAX_LISTED_REJECTIONS],
            "validation": result.get("validation", [])}


def success_lines(result: dict) -> list[str]:
    return [f"Labels kept: {result.get('accepted', 0)}",
            f"Labels refused: {result.get('rejected_count', 0)}"]


KIND = ExecutionKind(
    name="feedback", label="Feedback", run=run, needs_folder=FEEDBACK,
    stages=("validating", "joining"), produces=RESULT, button="Take in feedback",
    button_class="btn-outline-secondary", finalize=finalize, success_lines=success_lines)
