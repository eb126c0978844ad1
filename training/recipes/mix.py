"""The training mix of the shipped adapter: Davidson's tweets and the chat-like sources, in chosen proportions.

`modbot train --per-class` balances the *merged* data; this mix needs a share per source, so the recipe
writes it here first, as one text/label JSONL that `modbot train --data` reads:

- Davidson (seed_train + the pool, minus every held-out message): a balanced sample, so the adapter
  keeps what it knows of tweets while it learns the rest;
- ToxiGen statements: all of them (implicit hate about groups vs ordinary statements about them);
- Wikipedia talk-page comments: every toxic one (labelled hate or offensive by docs/labels.md, see
  data/wiki_toxicity_labelling.md) and a sample of the ordinary ones, which often name groups;
- the project's own augmentation (`modbot augment`), given as a file.

With `--disability-insults-offensive` a hate label on a disability slur thrown as a generic insult is made
offensive, as the guide says (training/guide_labels.py).

Usage (from the repository root; training/recipes/smollm2-135m.sh runs it):
    .venv/bin/python training/recipes/mix.py --exclude A.jsonl --exclude B.jsonl --augment aug.jsonl \
        --out runs/mix.jsonl
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from a checkout

from training.dataset import merge_sources, read_keys, take_per_class, to_jsonl, without  # noqa: E402
from training.formats import Example, read_examples  # noqa: E402
from training.guide_labels import disability_insults_as_offensive  # noqa: E402


def _at_most(examples: list[Example], label: str, limit: int | None, seed: int) -> list[Example]:
    """``examples`` with at most ``limit`` of those labelled ``label`` (a seeded sample; all when None)."""
    if limit is None:
        return examples
    chosen = [e for e in examples if e.label == label]
    random.Random(seed).shuffle(chosen)
    return [e for e in examples if e.label != label] + chosen[:limit]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="where the source files are (data/)")
    parser.add_argument("--exclude", type=Path, action="append", default=[],
                        help="held-out files whose messages never enter the mix (repeatable)")
    parser.add_argument("--augment", type=Path, action="append", default=[], help="augmentation JSONL (repeatable)")
    parser.add_argument("--davidson-per-class", type=int, default=600)
    parser.add_argument("--wiki-neutral", type=int, default=400, help="ordinary Wikipedia comments to include")
    parser.add_argument("--toxigen-hate", type=int, help="at most this many of ToxiGen's hateful statements (default all)")
    parser.add_argument("--toxigen-neutral", type=int,
                        help="at most this many of ToxiGen's ordinary statements (default all)")
    parser.add_argument("--wiki-flagged", type=int, help="at most this many toxic Wikipedia comments (default all)")
    parser.add_argument("--disability-insults-offensive", action="store_true",
                        help="label offensive, not hate, a disability slur thrown as a generic insult (docs/labels.md)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    held_out = read_keys(args.exclude)
    data = args.data_dir
    davidson, _ = without(merge_sources([data / "seed_train.csv", data / "davidson_pool.csv"]).examples, held_out)
    davidson, _ = take_per_class(davidson, args.davidson_per_class, args.seed)
    toxigen, _ = without(read_examples(data / "toxigen_statements.csv"), held_out)
    toxigen = _at_most(toxigen, "hate", args.toxigen_hate, args.seed)
    toxigen = _at_most(toxigen, "neutral", args.toxigen_neutral, args.seed)
    wiki, _ = without(read_examples(data / "wiki_toxicity_labelled.csv"), held_out)
    wiki_flagged = [e for e in wiki if e.label != "neutral"]
    wiki_neutral = [e for e in wiki if e.label == "neutral"]
    random.Random(args.seed).shuffle(wiki_neutral)
    if args.wiki_flagged is not None:
        random.Random(args.seed).shuffle(wiki_flagged)
        wiki_flagged = wiki_flagged[: args.wiki_flagged]
    augmented: list[Example] = []
    for path in args.augment:
        part, _ = without(read_examples(path), held_out)
        augmented += part

    parts = {"davidson": davidson, "toxigen": toxigen, "wiki": wiki_flagged + wiki_neutral[: args.wiki_neutral],
             "augment": augmented}
    if args.disability_insults_offensive:
        for name, part in parts.items():
            parts[name], changed = disability_insults_as_offensive(part)
            print(f"{name}: relabelled {changed} disability insults from hate to offensive")
    mix = [example for part in parts.values() for example in part]
    random.Random(args.seed + 1).shuffle(mix)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(to_jsonl(mix), encoding="utf-8")
    for name, part in parts.items():
        counts = Counter(example.label for example in part)
        print(f"{name:<9} {len(part):>5}: " + ", ".join(f"{label} {counts[label]}" for label in sorted(counts)))
    print(f"wrote {len(mix)} examples to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
