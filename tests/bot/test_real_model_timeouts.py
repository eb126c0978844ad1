"""The real-model tests wait for the model as long as it may take on a busy machine (tests.real_model): these
checks run in the default, fast suite, so a short timeout is caught before it makes `make test` flaky."""

from __future__ import annotations

import subprocess

MINIMUM_S = 120


def test_the_real_model_bot_tests_give_simcord_minutes_to_settle():
    from tests.bot import test_real_model

    marks = {mark.name: mark for mark in test_real_model.pytestmark}
    assert "real_model" in marks
    assert marks["simcord"].kwargs["settle_timeout"] >= MINIMUM_S


def test_the_real_model_shell_tests_give_modbot_minutes(monkeypatch):
    from tests.model import test_real_default_model

    seen = []

    def run(command, **kwargs):
        seen.append(kwargs.get("timeout"))
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(test_real_default_model.subprocess, "run", run)
    test_real_default_model.run_modbot("classify", "hello")
    assert seen and all(timeout is not None and timeout >= MINIMUM_S for timeout in seen)
