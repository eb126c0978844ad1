"""Fixtures for the training tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models gain nothing from threads, and on a shared CPU threads waiting for each other stall."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def learnable_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny GPT-J re-initialised with larger weights: at the default scale (0.02) a 2-layer random model
    passes almost nothing of the message to the cue, and no adapter learns the toy task in a few dozen steps."""
    from transformers import AutoTokenizer, GPTJConfig, GPTJForCausalLM

    directory = tmp_path_factory.mktemp("tiny-gptj-learnable")
    config = GPTJConfig.from_pretrained(tiny_model_dir)
    config.initializer_range = 0.15
    torch.manual_seed(0)
    GPTJForCausalLM(config).save_pretrained(directory)
    AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(directory)
    return directory
