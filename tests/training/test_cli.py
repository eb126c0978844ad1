"""`modbot train`, `modbot eval` and `modbot compare` from the command line, on the tiny GPT-J."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.cli import main

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


@pytest.fixture
def env(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MODBOT_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("MODBOT_DEVICE", "cpu")
    monkeypatch.setenv("MODBOT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("MODBOT_ADAPTER", raising=False)
    return tmp_path


def test_train_then_eval_prints_metrics_as_json_on_the_last_line(env, capsys, monkeypatch):
    out = env / "adapter"
    code = main(["train", "--data", str(FIXTURES / "training_text_label.csv"), "--val-per-class", "2",
                 "--out", str(out), "--epochs", "1", "--max-steps", "2", "--max-message-tokens", "16",
                 "--threads", "1"])
    assert code == 0 and (out / "modbot_adapter.json").is_file()
    capsys.readouterr()
    monkeypatch.setenv("MODBOT_ADAPTER", str(out))  # eval without --adapter uses what classify would use
    assert main(["eval", "--data", str(FIXTURES / "training_davidson.csv"), "--json"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    metrics = json.loads(last)
    assert {"accuracy", "macro_f1", "per_class", "confusion_matrix", "n"} <= set(metrics)
    assert metrics["n"] == 12 and metrics["adapter"] == json.loads((out / "modbot_adapter.json").read_text())["version"]
    assert sum(map(sum, metrics["confusion_matrix"])) == 12


def test_compare_reuses_finished_runs_and_prints_a_table(env, capsys):
    out = env / "compare"
    args = ["compare", "--data", str(FIXTURES / "training_text_label.csv"), "--val-per-class", "2",
            "--out", str(out), "--strategies", "few-shot", "--few-shot-k", "1", "--max-message-tokens", "16"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "| few-shot |" in first and "GPT-3 Davinci fine-tuned (reference) | 0.84" in first
    assert main([*args, "--resume"]) == 0
    captured = capsys.readouterr()
    assert "reusing the finished run" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1]) == json.loads(first.strip().splitlines()[-1])


@pytest.mark.parametrize(("content", "message"), [
    ("text,label\nhello,neutral\nbye,maybe\n", "bad.csv:3: unknown label 'maybe'"),
    ("text,label\nhello,neutral\nbye,hate\n", "the training set has no 'offensive' examples"),
])
def test_bad_data_is_one_line_and_exit_status_2(env, capsys, content, message):
    path = env / "bad.csv"
    path.write_text(content)
    code = main(["train", "--data", str(path), "--out", str(env / "x")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (env / "x").exists()


def test_compare_exits_with_the_one_line_error_after_a_data_error(env):
    """The error happens in the strategy's own process; it must come back as the error, not hang the command."""
    import subprocess
    import sys

    bad = env / "bad.csv"
    bad.write_text("text,label\nhello,neutral\nbye,maybe\n")
    command = [sys.executable, "-m", "bot.cli", "compare", "--data", str(bad), "--out", str(env / "compare"),
               "--strategies", "1d"]
    done = subprocess.run(command, cwd=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("modbot: error: ") and "bad.csv:3: unknown label 'maybe'" in lines[-1]
    assert "Traceback" not in done.stderr
    assert not (env / "compare" / "1d" / "modbot_adapter.json").exists()
