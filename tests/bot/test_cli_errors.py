"""The shell's mistakes get a sentence, not a traceback: each case runs in its own process, as a user runs it,
and must end with one `error:` line and exit status 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from model.adapter import PEFT_WEIGHTS_FILE

REPO = Path(__file__).resolve().parents[2]


def _run(command: list[str], cwd: Path, **extra_env) -> subprocess.CompletedProcess:
    """``command`` in its own process with no MODBOT_ variable nor DISCORD_TOKEN but ``extra_env``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODBOT_") and k != "DISCORD_TOKEN"}
    return subprocess.run(command, cwd=cwd, env={**env, **extra_env}, capture_output=True, text=True, timeout=300)


def _modbot(args: list[str], cwd: Path, **extra_env) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "bot.cli", *args], cwd, PYTHONPATH=str(REPO), **extra_env)


def assert_one_line_error(done: subprocess.CompletedProcess, prefix: str) -> str:
    """Exit status 2, no traceback, and the last line of standard error is the sentence; returns it."""
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith(prefix), done.stderr
    return last


def test_modbot_model_naming_an_empty_directory_is_one_line(tmp_path):
    (tmp_path / "empty-model").mkdir()
    done = _modbot(["classify", "hello"], tmp_path, MODBOT_MODEL=str(tmp_path / "empty-model"), MODBOT_DEVICE="cpu",
                   MODBOT_QUANTIZATION="none", MODBOT_ADAPTER="none")
    line = assert_one_line_error(done, "modbot: error: MODBOT_MODEL=")
    assert "empty-model" in line and "no config.json" in line


def test_a_model_directory_without_its_tokenizer_is_one_line(tmp_path, tiny_model_dir):
    model_dir = tmp_path / "half-model"
    model_dir.mkdir()
    shutil.copy(tiny_model_dir / "config.json", model_dir / "config.json")  # a config, nothing else
    done = _modbot(["classify", "hello"], tmp_path, MODBOT_MODEL=str(model_dir), MODBOT_DEVICE="cpu",
                   MODBOT_QUANTIZATION="none", MODBOT_ADAPTER="none")
    line = assert_one_line_error(done, "modbot: error: ")
    assert "half-model" in line


@pytest.fixture(scope="module")
def lora_adapters(tiny_model_dir, tmp_path_factory):
    """Two LoRA adapters of the tiny model that make a soup."""
    from tests.training.test_training import _args
    from training.recipe import run_training

    root = tmp_path_factory.mktemp("soup-cli")
    first = _args(tiny_model_dir, root, out=root / "a", epochs=1, max_steps=1, lora_r=4, lora_alpha=8)
    second = replace(first, out=root / "b", seed=1)
    for args in (first, second):
        run_training(args, echo=lambda line: None)
    return first.out, second.out


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_modbot_soup_on_a_corrupt_adapter_is_one_line(tmp_path, lora_adapters, damage):
    good = shutil.copytree(lora_adapters[0], tmp_path / "good")
    broken = shutil.copytree(lora_adapters[1], tmp_path / "broken")
    weights = broken / PEFT_WEIGHTS_FILE
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        weights.write_bytes(b"this is not a safetensors file\n" * 40)
    done = _modbot(["soup", str(good), str(broken), "--out", "soup"], tmp_path)
    line = assert_one_line_error(done, "modbot: error: Adapter weights ")
    assert str(weights) in line and "corrupt" in line
    assert not (tmp_path / "soup").exists()


def test_bench_classify_without_its_data_is_one_line(tmp_path):
    done = _run([sys.executable, str(REPO / "bench" / "classify.py"), "--quick", "--data", "missing.csv"], tmp_path)
    line = assert_one_line_error(done, "bench/classify.py: error: --data missing.csv: cannot be read")
    assert "No such file" in line


def test_modbot_run_refuses_an_unknown_model_before_connecting_to_discord(tmp_path):
    # The token is never tried: the first thing discord.py would do with it is log in over HTTP, and the
    # error would then be about Discord (or the bot would be online with no model to serve).
    done = _modbot(["run"], tmp_path, DISCORD_TOKEN="not-a-real-token", MODBOT_MODEL="no-such-model",
                   MODBOT_DB=str(tmp_path / "bot.sqlite3"))
    assert_one_line_error(done, "modbot: error: MODBOT_MODEL='no-such-model' is not a known model")
    assert "Discord" not in done.stderr
    assert not (tmp_path / "bot.sqlite3").exists()  # nothing started
