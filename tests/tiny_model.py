"""A tiny randomly initialised GPT-J (2 layers) with a tokenizer trained in the test, saved as a local model.

It goes through the same loader as the real models (MODBOT_MODEL=<its directory>), so tests exercise
the real transformers / PEFT / bitsandbytes code paths in a fraction of a second per call.
"""

from __future__ import annotations

from pathlib import Path

from model.labels import LABELS
from model.prompt import CUE, INSTRUCTION, MESSAGE_MARKER

_CORPUS = [
    INSTRUCTION,
    f"{MESSAGE_MARKER} {CUE}",
    "the quick brown fox jumps over the lazy dog",
    "you are a good friend and i like you",
    "what time is the meeting tomorrow",
    "shut up you stupid idiot",
    "those people are vermin and should leave",
    "@user #channel @role :smile: [link] [...] [time]",
    "0123456789 !?.,;:'\"()-_/ <>",
]


def build_tiny_model(directory: Path, single_token_labels: bool, seed: int = 0) -> Path:
    """Save a 2-layer GPT-J and a byte-level BPE tokenizer to ``directory``.

    With ``single_token_labels`` the vocabulary is large enough that " hate", " offensive" and
    " neutral" are one token each; without it, a tiny vocabulary splits them into several.
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPTJConfig, GPTJForCausalLM, PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    corpus = list(_CORPUS)
    vocab_size = 420 if single_token_labels else 280
    if single_token_labels:
        corpus += [f"{CUE} {label}" for label in LABELS] * 50
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    directory.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(directory)

    torch.manual_seed(seed)
    config = GPTJConfig(
        vocab_size=len(fast),
        n_positions=1024,
        n_embd=64,
        n_layer=2,
        n_head=4,
        rotary_dim=8,
        bos_token_id=fast.eos_token_id,
        eos_token_id=fast.eos_token_id,
    )
    GPTJForCausalLM(config).save_pretrained(directory)
    return directory
