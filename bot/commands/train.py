"""`modbot train`, `modbot eval`, `modbot compare` and `modbot soup`: make, measure, compare and average adapters."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields
from pathlib import Path

from training.args import DECAYS, OPTIMIZERS, PRECISIONS, STRATEGIES, TrainArgs

_FORMATS = ("Data files: a Davidson CSV (count,...,class,tweet), a text,label CSV, prompt/completion JSONL "
            "or the bot's correction export JSONL (text, label, ...). Later files win where a message repeats.")


def register(subparsers) -> None:
    train = subparsers.add_parser("train", help="train an adapter on labelled messages",
                                  description="Train a LoRA (or 1d / few-shot) adapter. " + _FORMATS)
    _data_options(train)
    train.add_argument("--out", type=Path, required=True, help="adapter directory to write")
    train.add_argument("--strategy", choices=STRATEGIES, default="all",
                       help="1d: biases and norms only; attention: LoRA on attention projections; all: LoRA on "
                            "attention and MLP projections; few-shot: no training, examples in the prompt "
                            "(default all)")
    train.add_argument("--version", help="version name recorded in the metadata (default STRATEGY-TIMESTAMP)")
    train.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    _training_options(train)
    train.set_defaults(handler=run_train)

    evaluate = subparsers.add_parser("eval", help="measure an adapter on labelled messages",
                                     description="Accuracy, macro-F1, per-class metrics and the confusion "
                                                 "matrix of a model and adapter. " + _FORMATS)
    evaluate.add_argument("--data", type=Path, required=True, action="append", help="labelled messages")
    evaluate.add_argument("--adapter", type=Path,
                          help="adapter directory (default: MODBOT_ADAPTER, else the active version of the "
                               "bot's registry in MODBOT_DB, else the shipped one)")
    evaluate.add_argument("--zero-shot", action="store_true", help="measure the base model without any adapter")
    evaluate.add_argument("--batch-size", type=int, default=32, help="messages per forward pass (default 32)")
    evaluate.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")
    evaluate.add_argument("--by", choices=("category",),
                          help="also report accuracy per category (a `category` column or key in --data) and "
                               "which way each category's errors go")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object on the last line")
    evaluate.set_defaults(handler=run_eval)

    compare = subparsers.add_parser("compare", help="train and measure the four strategies on the same data",
                                    description="Run 1d, attention, all and few-shot on the same data and print "
                                                "a Markdown table and JSON. " + _FORMATS)
    _data_options(compare)
    compare.add_argument("--out", type=Path, required=True, help="directory for one adapter per strategy")
    compare.add_argument("--strategies", default=",".join(STRATEGIES),
                         help=f"comma-separated subset (default {','.join(STRATEGIES)})")
    compare.add_argument("--resume", action="store_true",
                         help="reuse strategies already finished under --out instead of training them again")
    _training_options(compare)
    compare.set_defaults(handler=run_compare)

    soup = subparsers.add_parser("soup", help="average several LoRA adapters of one base model into one",
                                 description="Average the weight changes of LoRA adapters trained on the same base "
                                             "model (e.g. on different samples or seeds) into one adapter that "
                                             "serves as fast as any single one.")
    soup.add_argument("adapters", type=Path, nargs="+", metavar="ADAPTER", help="adapter directories (two or more)")
    soup.add_argument("--out", type=Path, required=True, help="adapter directory to write")
    soup.add_argument("--version", help="version name recorded in the metadata (default soup-TIMESTAMP)")
    soup.add_argument("--eval-on", type=Path, action="append", default=[],
                      help="labelled file to measure the soup on (eval_<name>.json is written; repeatable)")
    soup.add_argument("--max-rank", type=int, metavar="R",
                      help="compress the soup to LoRA rank R at most (truncated SVD of each layer's change): the "
                           "soup's rank is otherwise the members' ranks summed, and so is its file")
    soup.add_argument("--weight", type=float, action="append", metavar="W", dest="weights",
                      help="each adapter's weight in the soup, once per adapter in their order (normalised to sum "
                           "to 1; default: an even average)")
    soup.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    soup.add_argument("--threads", type=int, help="CPU threads for torch (default: all cores)")
    soup.set_defaults(handler=run_soup)


def _data_options(parser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--data", type=Path, action="append", required=True,
                       help="training data file (repeatable; later files win where a message repeats)")
    group.add_argument("--val", type=Path, action="append", default=[],
                       help="validation file (repeatable); default: a stratified split of --data")
    group.add_argument("--eval-on", type=Path, action="append", default=[],
                       help="also measure the result on this file (repeatable); its messages are never trained on")
    group.add_argument("--exclude", type=Path, action="append", default=[],
                       help="never train, validate or test on the messages of this file (repeatable)")
    group.add_argument("--per-class", type=int, help="balanced sample: at most N training examples per class")
    group.add_argument("--val-fraction", type=float, default=0.1, help="stratified validation share (default 0.1)")
    group.add_argument("--val-per-class", type=int, help="a balanced validation split of N per class instead")
    group.add_argument("--test-per-class", type=int,
                       help="hold out a balanced test split of N per class, measured after training")


def _training_options(parser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, default=2, help="default 2")
    group.add_argument("--batch-size", type=int, default=8, help="examples per forward pass (default 8)")
    group.add_argument("--grad-accum", type=int, default=1, help="batches per optimiser step (default 1)")
    group.add_argument("--lr", type=float, default=1.5e-3, help="peak learning rate (default 1.5e-3)")
    group.add_argument("--warmup-ratio", type=float, default=0.06, help="share of steps to warm up (default 0.06)")
    group.add_argument("--decay", choices=DECAYS, default="cosine", help="after warm-up (default cosine, to 10%%)")
    group.add_argument("--weight-decay", type=float, default=0.0, help="default 0")
    group.add_argument("--optimizer", choices=OPTIMIZERS, default="adam8bit", help="default adam8bit")
    group.add_argument("--init-adapter", type=Path,
                       help="start from this LoRA adapter's weights (same base model; its rank and targets) "
                            "instead of a fresh LoRA")
    group.add_argument("--lora-r", type=int, default=8, help="LoRA rank (default 8)")
    group.add_argument("--lora-alpha", type=int, default=16, help="LoRA alpha (default 16)")
    group.add_argument("--lora-dropout", type=float, default=0.05, help="LoRA dropout (default 0.05)")
    group.add_argument("--few-shot-k", type=int, default=2, help="few-shot examples per class (default 2)")
    group.add_argument("--max-message-tokens", type=int, default=64,
                       help="message token budget; longer messages keep head and tail (default 64)")
    group.add_argument("--max-steps", type=int, help="stop after N optimiser steps (quick probes)")
    group.add_argument("--seed", type=int, default=0, help="default 0")
    model = parser.add_argument_group("model")
    model.add_argument("--model", default=None, help="base model (default MODBOT_MODEL, else smollm2-135m)")
    model.add_argument("--quantization", default=None, help="auto, 8bit, 4bit or none (default MODBOT_QUANTIZATION)")
    model.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N (default MODBOT_DEVICE)")
    model.add_argument("--precision", choices=PRECISIONS, default="auto",
                       help="autocast on CUDA: bf16 where supported, else fp16; fp32 on the CPU (default auto)")
    model.add_argument("--gradient-checkpointing", action="store_true",
                       help="recompute activations in the backward pass: less memory, ~30%% slower")
    model.add_argument("--eval-batch-size", type=int, default=32, help="default 32")
    model.add_argument("--threads", type=int,
                       help="CPU threads for torch (default: all cores); 1 is much faster on a busy shared CPU, "
                            "where threads that wait for each other stall")


def train_args(args: argparse.Namespace, **overrides) -> TrainArgs:
    """TrainArgs from the parsed options, with model settings defaulting to the MODBOT_* environment."""
    from model import ModelSettings

    env = ModelSettings.from_env()
    values = {
        "data": tuple(args.data), "val": tuple(args.val), "eval_on": tuple(args.eval_on),
        "exclude": tuple(args.exclude),
        "model": args.model or env.model, "quantization": (args.quantization or env.quantization).lower(),
        "device": (args.device or env.device).lower(), "cache_dir": env.cache_dir,
    }
    names = {f.name for f in fields(TrainArgs)}
    for name, value in vars(args).items():
        if name in names and name not in values:
            values[name] = value
    values.update(overrides)
    return TrainArgs(**values)


def run_train(args: argparse.Namespace) -> int:
    from training.recipe import run_training

    run_training(train_args(args), echo=_echo)
    return 0


def run_eval(args: argparse.Namespace) -> int:
    from model import ModelSettings
    from training.dataset import format_counts, merge_sources
    from training.evaluate import evaluate
    from training.metrics import format_metrics

    from .classify import load_classifier, with_registry_adapter

    merged = merge_sources(args.data)
    _set_threads(args.threads)
    settings = ModelSettings.from_env()
    overrides = {"adapter": args.adapter} if args.adapter else {}
    if args.zero_shot:
        overrides = {"adapter": None, "use_default_adapter": False}
    settings, source = with_registry_adapter(ModelSettings(**{**settings.__dict__, **overrides}))
    classifier = load_classifier(settings, source)
    loaded = classifier.loaded
    from training.dataset import class_counts

    where = f" ({source})" if source else ""
    _echo(f"{loaded.model_name} with adapter {classifier.adapter_version}{where} on {len(merged.examples)} "
          f"messages: {format_counts(class_counts(merged.examples))}")
    metrics = evaluate(loaded.model, classifier.prompts, merged.examples, loaded.tokenizer.pad_token_id,
                       loaded.device, args.batch_size, keep_predictions=bool(args.by))
    metrics = {"model": loaded.model_name, "adapter": classifier.adapter_version,
               "data": [str(path) for path in args.data], **metrics}
    print(format_metrics(metrics))
    if args.by:
        from training.evaluate import by_category, format_by_category

        if not any(example.category for example in merged.examples):
            _echo("note: --by category: the data has no category column; every message is in one group.")
        metrics["by_category"] = by_category(merged.examples, metrics.pop("predicted"))
        print()
        print(format_by_category(metrics["by_category"]))
    if args.json:
        print(json.dumps(metrics))
    return 0


def run_compare(args: argparse.Namespace) -> int:
    from training.compare import compare, markdown_table

    strategies = [name.strip() for name in args.strategies.split(",") if name.strip()]
    unknown = [name for name in strategies if name not in STRATEGIES]
    if unknown or not strategies:
        from training.errors import TrainingError

        raise TrainingError(f"--strategies {args.strategies!r}: use a comma-separated subset of {','.join(STRATEGIES)}.")
    base = train_args(args, out=args.out / strategies[0], strategy=strategies[0])
    rows = compare(base, strategies, args.out, resume=args.resume, echo=_echo)
    print(markdown_table(rows))
    print(json.dumps(rows))
    return 0


def run_soup(args: argparse.Namespace) -> int:
    from model import ModelSettings
    from training.errors import TrainingError
    from training.soup import evaluate_soup, make_soup

    missing = [path for path in args.eval_on if not path.is_file()]
    if missing:  # before the soup is written, not after
        raise TrainingError(f"--eval-on {missing[0]}: no such file.")
    settings = ModelSettings.from_env() if args.eval_on else None  # a wrong setting, too
    make_soup(args.adapters, args.out, version=args.version, overwrite=args.overwrite, echo=_echo,
              max_rank=args.max_rank, shares=args.weights)
    if args.eval_on:
        _set_threads(args.threads)
        evaluate_soup(args.out, args.eval_on, settings, echo=_echo)
    return 0


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


def _echo(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
