"""Quieting libraries for people who run modbot: progress bars, deprecation advice and optional-kernel
notices from transformers, peft and bitsandbytes are noise to a server owner."""

import logging
import os
import sys
import warnings


def quiet_transformers() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # bitsandbytes looks for an optional faster 4-bit CPU kernel package and warns when it is absent;
    # 4-bit still works without it.
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    # peft calls a transformers method that transformers 5 renamed; harmless until transformers 6.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    # Through the environment, which transformers and huggingface_hub read when they are imported, so
    # that quieting them does not import them (and torch): `modbot --help` stays fast.
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    if "transformers" not in sys.modules:
        return
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
