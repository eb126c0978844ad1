"""The training augmentation (`training.augment`) and `modbot augment`: no model, fast."""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from difflib import SequenceMatcher
from pathlib import Path

import pytest

from bot.cli import main
from training import augment
from training.dataset import text_key
from training.formats import Example, read_examples

# The categories the guide needs taught, with the label the guide gives each (docs/labels.md).
EXPECTED_CATEGORIES = {
    "identity_self": "neutral", "group_positive": "neutral", "group_question": "neutral",
    "group_neutral_fact": "neutral", "counter_quote": "neutral", "counter_denounce": "neutral",
    "negated_hate": "neutral", "reported_hate": "neutral", "criticism_not_people": "neutral",
    "benign_violent_words": "neutral", "everyday_chat": "neutral",
    "hate_dehumanising": "hate", "hate_violence": "hate", "hate_exclusion": "hate", "hate_inferiority": "hate",
    "hate_stereotype": "hate", "hate_threat_identity": "hate", "hate_slur_identity": "hate",
    "hate_between_chat": "hate", "hate_as_question": "hate", "slur_as_insult": "offensive",
    "insult_person": "offensive", "threat_person": "offensive", "self_harm_incitement": "offensive",
    "harassment": "offensive", "profanity_untargeted": "offensive", "insult_nonprotected_group": "offensive",
}
PROFANITY = re.compile(r"\b(fuck\w*|shit\w*|bullshit|goddamn|wtf|stfu)\b", re.IGNORECASE)
ATTACKS = [
    Example("you are a complete idiot and everyone knows it", "offensive"),
    Example("Those people are VERMIN and should be thrown out of the country", "hate"),
    Example("shut the fuck up, nobody wants to hear your stupid opinions", "offensive"),
]
HARMLESS = Example("anyone want to play some rocket league tonight after dinner", "neutral")


@pytest.fixture(scope="module")
def templated():
    return augment.generate_templated(seed=1, per_category=40)


def test_the_same_seed_gives_the_same_examples_and_another_seed_others(templated):
    assert augment.generate_templated(seed=1, per_category=40) == templated
    other = augment.generate_templated(seed=2, per_category=40)
    assert len({e.text for e in other} & {e.text for e in templated}) < len(templated) // 2


def test_every_category_is_present_with_its_label(templated):
    by_category = Counter(e.source for e in templated)
    assert by_category == {f"augment:{name}": 40 for name in EXPECTED_CATEGORIES}
    for example in templated:
        assert example.category == example.source.removeprefix("augment:")
        assert example.label == EXPECTED_CATEGORIES[example.category], example


def test_no_two_examples_read_the_same_even_at_a_large_size():
    examples = augment.generate_templated(seed=0, per_category=150)
    keys = [text_key(e.text) for e in examples]
    assert len(keys) == len(set(keys)) == 150 * len(EXPECTED_CATEGORIES)
    # Near-duplicates: the same words once fillers ("ngl", "lol") and emoji are left out.
    assert len({augment._near_duplicate_key(e.text) for e in examples}) > 0.97 * len(examples)


def test_neutral_examples_never_swear_and_attacks_name_no_extra_groups(templated):
    # Swearing is offensive by the guide, so a neutral example with a swear word would be mislabelled.
    assert not [e.text for e in templated if e.label == "neutral" and PROFANITY.search(e.text)]
    assert any(PROFANITY.search(e.text) for e in templated if e.source == "augment:profanity_untargeted")


@pytest.mark.parametrize("name", list(augment.TRICKS))
def test_each_trick_changes_what_the_model_reads(name):
    trick = augment.TRICKS[name]
    rng = random.Random(0)
    for example in ATTACKS:
        changed = [trick(example.text, rng) for _ in range(10)]
        assert all(text != example.text for text in changed), (name, changed)
        # Prompt normalisation itself reads plain leetspeak and spaced-out words; obfuscate() keeps what it cannot.
        if name not in ("leet", "spaced"):
            assert any(text_key(text) != text_key(example.text) for text in changed), (name, changed)


@pytest.mark.parametrize(("name", "looks"), [
    ("leet", lambda old, new: re.search(r"[0-9@!$]", new) and len(new) == len(old)),
    ("swap", lambda old, new: sorted(old) == sorted(new) and len(new) == len(old)),
    ("delete", lambda old, new: len(old) - 2 <= len(new) == len(new.replace("*", "")) < len(old)),
    ("spaced", lambda old, new: re.search(r"\b\w[ .-]\w[ .-]\w\b", new)),
    ("elongate", lambda old, new: re.search(r"(\w)\1\1", new) and len(new) > len(old) + 1),
    ("mask", lambda old, new: "*" in new and len(new) == len(old)),
])
def test_each_trick_is_the_trick_it_is_named_after(name, looks):
    rng = random.Random(3)
    for example in ATTACKS:
        new = augment.TRICKS[name](example.text, rng)
        assert looks(example.text, new), (name, new)


def test_obfuscated_variants_keep_their_original_label_and_only_attacks_are_obfuscated():
    pool = [*ATTACKS, HARMLESS, Example("the weather is lovely in the park this morning", "neutral")]
    variants = augment.obfuscate(pool, 30, seed=0)
    assert len(variants) == 30
    originals = {text_key(e.text) for e in pool}
    for variant in variants:
        assert text_key(variant.text) not in originals
        assert variant.source.startswith("augment:obfuscated:") and variant.source.split(":")[-1] in augment.TRICKS
        nearest = max(pool, key=lambda e: SequenceMatcher(None, e.text.lower(), variant.text.lower()).ratio())
        assert nearest.label in ("hate", "offensive") and variant.label == nearest.label, variant
    assert len({text_key(v.text) for v in variants}) == 30
    assert augment.obfuscate(pool, 30, seed=0) == variants


def test_nothing_to_obfuscate_is_an_error_not_an_empty_list():
    with pytest.raises(ValueError, match="no hate or offensive"):
        augment.obfuscate([HARMLESS], 5, seed=0)
    with pytest.raises(ValueError, match="no hate or offensive"):
        augment.inject([HARMLESS], 5, seed=0)


def test_injections_keep_the_label_and_the_whole_original(templated):
    pool = [*ATTACKS, HARMLESS]
    injected = augment.inject(pool, 40, seed=0)
    assert len(injected) == 40
    for example in injected:
        sources = [e for e in ATTACKS if e.text in example.text]
        assert len(sources) == 1 and sources[0].label == example.label, example
        assert example.text != sources[0].text and example.source.startswith("augment:injected:")
        assert HARMLESS.text not in example.text
    fake = re.compile(r"neutral|neither|not hate|harmless|fine|safe|not offensive|offensive", re.IGNORECASE)
    assert all(fake.search(e.text.replace(src.text, "")) for e in injected for src in ATTACKS if src.text in e.text)
    # Replays of our own prompt's markers are among them.
    assert any("Message:" in e.text for e in injected) and any("Category:" in e.text for e in injected)


def test_cli_writes_a_file_training_reads_back(tmp_path, capsys):
    source = tmp_path / "labelled.csv"
    source.write_text("text,label\nyou worthless clown get off my team,offensive\nnice weather today,neutral\n")
    out = tmp_path / "aug.jsonl"
    code = main(["augment", "--out", str(out), "--per-category", "3", "--seed", "5",
                 "--obfuscate-from", str(source), "--obfuscate-count", "200", "--inject-count", "7"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    examples = read_examples(out)
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(examples) == len(records) == 3 * len(EXPECTED_CATEGORIES) + 200 + 7
    assert [(e.text, e.label, e.category) for e in examples] == [(r["text"], r["label"], r["category"]) for r in records]
    categories = Counter(r["category"] for r in records)
    assert all(categories[name] == 3 for name in EXPECTED_CATEGORIES)
    assert sum(n for c, n in categories.items() if c.startswith("obfuscated:")) == 200
    assert sum(n for c, n in categories.items() if c.startswith("injected:")) == 7
    # The file's own hate/offensive line is disguised too; its neutral line is not, nor written as is.
    assert any("cl" in r["text"] and "team" in r["text"] and r["category"].startswith("obfuscated:")
               and r["label"] == "offensive" for r in records)
    assert not any(r["text"] == "nice weather today" for r in records)
    assert "hate_dehumanising" in captured.out and "total" in captured.out
    assert re.search(r"^identity_self\s+0\s+0\s+3\s+3$", captured.out, re.MULTILINE)


def test_cli_output_is_the_same_for_the_same_seed(tmp_path, capsys):
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for out in (first, second):
        assert main(["augment", "--out", str(out), "--per-category", "2", "--seed", "9"]) == 0
    assert first.read_bytes() == second.read_bytes()


def test_cli_category_counts_override_the_default(tmp_path, capsys):
    out = tmp_path / "aug.jsonl"
    assert main(["augment", "--out", str(out), "--per-category", "2", "--category", "counter_quote=9",
                 "--category", "everyday_chat=0", "--obfuscate-count", "0", "--inject-count", "0"]) == 0
    categories = Counter(json.loads(line)["category"] for line in out.read_text(encoding="utf-8").splitlines())
    assert categories["counter_quote"] == 9 and "everyday_chat" not in categories
    assert categories["insult_person"] == 2


@pytest.mark.parametrize(("args", "message"), [
    (["--obfuscate-from", "{tmp}/missing.csv"], "missing.csv: no such file."),
    (["--category", "counter_qoute=4"], "no category 'counter_qoute'. The categories are: identity_self"),
    (["--category", "counter_quote"], "give a count of 0 or more after '='"),
    (["--per-category", "-1"], "--per-category must be 0 or more"),
    (["--per-category", "0", "--obfuscate-count", "5"], "no hate or offensive messages"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, args, message):
    out = tmp_path / "aug.jsonl"
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    code = main(["augment", "--out", str(out), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


OPT_IN_CATEGORIES = {"hate_slur_in_passing": "hate", "hate_threat_attribute": "hate",
                     "threat_person_veiled": "offensive", "dehumanise_nonprotected_group": "offensive",
                     "slur_lookalike_words": "neutral", "hostility_at_things": "neutral",
                     "counter_quote_leading": "neutral", "negated_hate_varied": "neutral",
                     "group_question_everyday": "neutral", "slur_as_insult_varied": "offensive"}


def test_opt_in_categories_are_made_only_when_named_and_leave_the_others_unchanged(templated):
    # The recipe's earlier steps ask for "every category": categories added later must not change them.
    assert not {e.category for e in templated} & set(OPT_IN_CATEGORIES)
    counts = {name: 12 for name in OPT_IN_CATEGORIES}
    with_extra = augment.generate_templated(seed=1, per_category=40, counts=counts)
    assert with_extra[:len(templated)] == templated
    extra = with_extra[len(templated):]
    assert Counter(e.category for e in extra) == counts
    assert all(e.label == OPT_IN_CATEGORIES[e.category] for e in extra)
    assert all(augment.category_capacity(name) > 500 for name in OPT_IN_CATEGORIES)


def test_the_wide_vocabulary_names_groups_and_people_the_core_one_never_does(templated):
    core_groups = {g.plural.lower() for g in augment.GROUPS}
    wider_groups = {g.plural.lower() for g in augment.WIDER_GROUPS}
    assert not core_groups & wider_groups and not set(augment.NAMES) & set(augment.WIDER_NAMES)

    def names_a_wider_group(text: str) -> bool:
        return any(re.search(rf"\b{re.escape(group)}\b", text.lower()) for group in wider_groups)

    assert not any(names_a_wider_group(e.text) for e in templated)
    wide = augment.generate_templated(seed=1, per_category=40, vocabulary=augment.WIDE_VOCABULARY)
    assert Counter(e.category for e in wide) == Counter(e.category for e in templated)
    assert all(e.label == EXPECTED_CATEGORIES[e.category] for e in wide)
    # About two thirds of the groups are new, so the neutral statements about groups name them often.
    about_groups = [e for e in wide if e.category in ("group_question", "negated_hate", "group_positive")]
    assert sum(names_a_wider_group(e.text) for e in about_groups) > len(about_groups) / 3
    assert sum(any(name in e.text for name in augment.WIDER_NAMES) for e in wide) > 40


def test_the_wide_vocabulary_keeps_every_group_and_name_out_of_the_functional_suite():
    # eval/functional.csv measures how the rules carry over to groups and names never trained on.
    suite = (Path(__file__).parents[2] / "eval" / "functional.csv").read_text(encoding="utf-8").lower()
    words = [g.plural for g in augment.WIDER_GROUPS] + [g.bare for g in augment.WIDER_GROUPS] + list(augment.WIDER_NAMES)
    assert not [word for word in words if re.search(rf"\b{re.escape(word.lower())}\b", suite)]


def test_articles_follow_the_sound_of_the_group(templated):
    assert augment._with_article("Ukrainian") == "a Ukrainian"
    assert augment._with_article("amputee") == "an amputee"
    assert augment._with_article("person with ADHD") == "a person with ADHD"


def test_cli_wide_vocabulary(tmp_path, capsys):
    core, wide = tmp_path / "core.jsonl", tmp_path / "wide.jsonl"
    common = ["--per-category", "3", "--obfuscate-count", "0", "--inject-count", "0", "--seed", "4"]
    assert main(["augment", "--out", str(core), *common]) == 0
    assert main(["augment", "--out", str(wide), "--wide-vocabulary", *common]) == 0
    assert len(read_examples(core)) == len(read_examples(wide))
    assert core.read_bytes() != wide.read_bytes()


def test_the_things_that_hostility_at_things_names_stay_out_of_its_functional_suite_category():
    # The suite's category of the same rule was written after the templates; it names other things.
    category = next(c for c in augment.CATEGORIES if c.name == "hostility_at_things")
    named = {option.strip() for template in category.templates
             for option in re.search(r"\[([^\]]*)\]", template).group(1).split("|")}
    rows = (Path(__file__).parents[2] / "eval" / "functional.csv").read_text(encoding="utf-8").lower().splitlines()
    cases = [row for row in rows if row.endswith(",neutral_hostility_at_things")]
    assert len(cases) == 30 and len(named) > 30
    assert not [(thing, case) for thing in named for case in cases if re.search(rf"\b{re.escape(thing)}\b", case)]


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _every_expansion(template: str) -> list[str]:
    """Every text a template's [a|b] alternatives can make (its {slots} left as they are)."""
    match = augment._ALTERNATIVES.search(template)
    if match is None:
        return [template]
    return [text for option in match.group(1).split("|")
            for text in _every_expansion(template[:match.start()] + option + template[match.end():])]


@pytest.mark.parametrize("name", ["counter_quote_leading", "negated_hate_varied", "group_question_everyday",
                                  "slur_as_insult_varied"])
def test_the_wording_of_templates_written_after_reading_the_suite_stays_out_of_it(name):
    # Written after reading the suite's misses: the rule may match, the wording must not. No run of four
    # words a template writes itself (its slots, shared with older categories, left out) is in a case.
    runs = _runs_of_four_words(name)
    assert runs and not _cases_sharing_a_run(runs, "functional.csv")


def test_the_lookalike_words_check_shares_no_wording_with_the_template_that_teaches_them():
    # eval/lookalike_words.csv measures whether "Nigeria", "Scunthorpe" and the like come out neutral in
    # sentences the model never saw; half its words are ones slur_lookalike_words trains on.
    runs = _runs_of_four_words("slur_lookalike_words")
    assert runs and not _cases_sharing_a_run(runs, "lookalike_words.csv")


def _runs_of_four_words(name: str) -> set[str]:
    """Every run of four words a category's templates write themselves (their {slots} break a run)."""
    category = next(c for c in augment.CATEGORIES if c.name == name)
    runs = set()
    for template in category.templates:
        for text in _every_expansion(augment._SLOT.sub("\n", template)):
            for line in text.splitlines():
                words = _words(line)
                runs |= {" ".join(words[i:i + 4]) for i in range(len(words) - 3)}
    return runs


def _cases_sharing_a_run(runs: set[str], eval_file: str) -> list[tuple[str, str]]:
    cases = (Path(__file__).parents[2] / "eval" / eval_file).read_text(encoding="utf-8").splitlines()
    return [(run, case) for case in cases for run in runs if f" {run} " in f" {' '.join(_words(case))} "]


def test_questions_about_food_language_and_customs_are_asked_only_of_groups_that_have_their_own():
    category = next(c for c in augment.CATEGORIES if c.name == "group_question_everyday")
    templates = [t for t in category.templates if "{culture}" in t]
    rng = random.Random(3)
    for vocabulary in (augment.CORE_VOCABULARY, augment.WIDE_VOCABULARY):
        others = [g.plural.lower() for g in vocabulary.groups if g.plural not in augment.CULTURES]
        texts = [augment._expand(rng.choice(templates), rng, vocabulary).lower() for _ in range(300)]
        assert len(templates) >= 6
        assert not [t for t in texts if any(re.search(rf"\b{re.escape(g)}\b", t) for g in others)]
        assert len({g for g in augment.CULTURES if any(g.lower() in t for t in texts)}) >= 8
