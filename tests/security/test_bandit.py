"""Bandit finds no high-severity issue in the application's packages."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["app", "cloud_storage", "controllers", "entity", "exception_layer", "integration",
            "logging_layer", "project_library", "thread_layer"]


@pytest.mark.slow  # a bandit process over every package
def test_bandit_finds_no_high_severity_issue():
    bandit = Path(sys.executable).with_name("bandit")
    assert bandit.exists(), "bandit is missing: pip install -r requirements-dev.txt"
    run = subprocess.run([str(bandit), "-r", *PACKAGES, "-f", "json", "-q"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    report = json.loads(run.stdout)
    assert not report["errors"], report["errors"]
    high = [f"{r['filename']}:{r['line_number']} {r['test_id']} {r['issue_text']}"
            for r in report["results"] if r["issue_severity"] == "HIGH"]
    assert not high, "\n".join(high)
