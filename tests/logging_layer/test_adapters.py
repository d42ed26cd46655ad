"""An adapter probes its library once, and when the probe fails (or PUBLIC_PATHS names it) it
is unusable and says so in exactly one log line. The adapters of the hot paths themselves are
tested where they are used (tests/controllers/test_spliced_body.py,
tests/cloud_storage/test_cloud_errors.py, tests/project_library/test_compiled.py)."""

from __future__ import annotations

import logging

import pytest

from app.config import ConfigError, load_config
from logging_layer import adapters
from logging_layer.adapters import Adapter


@pytest.fixture
def probes():
    """Calls of each probe, by adapter name; the adapters are removed afterwards."""
    made: list[str] = []
    calls: dict[str, int] = {}

    def make(name: str, answer):
        def probe():
            calls[name] = calls.get(name, 0) + 1
            if isinstance(answer, Exception):
                raise answer
            return answer
        made.append(name)
        return Adapter(name, probe, internal=f"{name}'s internal", fallback="the public path")

    yield make, calls
    adapters.turn_off(())
    for name in made:
        adapters._ADAPTERS.pop(name, None)


def adapter_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "trainyard.adapters"]


def test_a_passing_probe_runs_once_and_logs_nothing(probes, caplog):
    make, calls = probes
    adapter = make("test-fine", None)
    with caplog.at_level(logging.INFO, logger="trainyard.adapters"):
        assert adapter.usable and adapter.usable and adapters.check_all()["test-fine"]
    assert calls == {"test-fine": 1}
    assert adapter_lines(caplog) == []


@pytest.mark.parametrize("answer", ["the field moved", RuntimeError("no such attribute")])
def test_a_failing_probe_falls_back_with_one_log_line(probes, caplog, answer):
    make, calls = probes
    adapter = make("test-broken", answer)
    with caplog.at_level(logging.INFO, logger="trainyard.adapters"):
        assert not adapter.usable
        assert not adapter.check() and not adapters.check_all()["test-broken"]
    assert calls == {"test-broken": 1}
    (line,) = adapter_lines(caplog)
    assert line.startswith("test-broken: not using test-broken's internal (")
    assert str(answer) in line and line.endswith("using the public path instead")


def test_public_paths_turns_an_adapter_off_without_probing_it(probes, caplog):
    make, calls = probes
    named, other = make("test-named", None), make("test-other", None)
    assert named.usable
    with caplog.at_level(logging.INFO, logger="trainyard.adapters"):
        adapters.turn_off(["test-named"])
        assert not named.usable and other.usable
    assert calls == {"test-named": 1, "test-other": 1}
    (line,) = adapter_lines(caplog)
    assert "test-named" in line and "turned off by PUBLIC_PATHS" in line
    adapters.turn_off(())
    assert named.usable and calls["test-named"] == 2  # probed again once allowed
    adapters.turn_off("test-other, all")  # as a Flask setting given as text
    assert not named.usable and not other.usable


def test_the_setting_names_only_known_adapters(tmp_path):
    folders = {"DATA_DIR": str(tmp_path), "INSTANCE_DIR": str(tmp_path)}
    settings = load_config({"PUBLIC_PATHS": "gcs-session, sklearn-raw-predict"}, folders)
    assert settings["PUBLIC_PATHS"] == ("gcs-session", "sklearn-raw-predict")
    with pytest.raises(ConfigError, match="PUBLIC_PATHS='gcs' names gcs; known: all,"):
        load_config({"PUBLIC_PATHS": "gcs"}, folders)
