"""A baseline commit beside the working tree, for the benchmarks' ``--baseline-commit REV``.

``checkout(REV)`` extracts the commit with ``git archive`` into a temporary folder (removed
afterwards; the repository's worktrees and refs are left alone) and yields the folder and the
commit's short hash. The scripts then run that folder's code with the same interpreter and venv
(``cwd`` and ``sys.path`` on the folder) beside the working tree's, in the same run.

What counts as run-to-run noise is defined here once and printed with every verdict.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: new / baseline requests per second, per cell: at least this
MIN_RPS_RATIO = 0.9
#: new / baseline CPU time (per request, or per training): at most this
MAX_CPU_RATIO = 1.1
#: new / baseline wall time of a training: at most this (wall time moves more under load)
MAX_WALL_RATIO = 1.25


@contextmanager
def checkout(rev: str) -> Iterator[tuple[Path, str]]:
    """The tree of ``rev`` in a temporary folder, and its short hash."""
    short = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", f"{rev}^{{commit}}"],
                           capture_output=True, text=True)
    if short.returncode:
        raise SystemExit(f"--baseline-commit {rev}: {short.stderr.strip()}")
    folder = Path(tempfile.mkdtemp(prefix="trainyard-baseline-"))
    try:
        archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", "--format=tar", rev],
                                   stdout=subprocess.PIPE)
        with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
            tar.extractall(folder, filter="data")
        if archive.wait():
            raise SystemExit(f"git archive {rev} failed ({archive.returncode})")
        print(f"Baseline: {short.stdout.strip()} extracted to {folder}", flush=True)
        yield folder, short.stdout.strip()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ratio(new: float, old: float) -> float:
    return new / old if old else float("inf")
