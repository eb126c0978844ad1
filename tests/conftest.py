"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest

from model import ModelSettings

from .tiny_model import build_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A 2-layer GPT-J whose labels are one token each."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gptj-single"), single_token_labels=True)


@pytest.fixture(scope="session")
def tiny_multitoken_model_dir(tmp_path_factory):
    """A 2-layer GPT-J whose tokenizer splits the labels into several tokens."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-gptj-multi"), single_token_labels=False)


@pytest.fixture
def tiny_settings(tiny_model_dir, tmp_path):
    """Model settings for the tiny GPT-J on the CPU, no adapter."""
    return ModelSettings(model=str(tiny_model_dir), device="cpu", quantization="none", use_default_adapter=False,
                         cache_dir=tmp_path / "cache")
