#!/usr/bin/env bash
# Reproduces the shipped default adapter, model/adapters/smollm2-135m (smollm2-135m-chat-v10). Run it with
# `make adapter`. Nine steps:
#
#   1. Davidson soup (about 50 minutes on an idle 2-core CPU): three LoRA adapters trained on Davidson's
#      tweets with seeds 1, 2 and 3, averaged (`modbot soup`). This was the shipped v3.
#   2. The mix (seconds): Davidson replay, ToxiGen statements, Wikipedia talk-page comments labelled by
#      docs/labels.md, and the project's own augmentation (`modbot augment`: statements by and about
#      groups, counter-speech, negated and reported hate, insults and threats at people, obfuscated and
#      injected variants). See training/recipes/mix.py.
#   3. Chat adapter (about 70 minutes): two members start from the soup's weights (--init-adapter) and run
#      one epoch over the mix with seeds 1 and 2, so they learn the guide without forgetting the tweets;
#      their soup takes a second, gentler pass over a second draw of the mix, and the shipped adapter is
#      the soup of the two. This was the shipped v4.
#   4. Guide round (about 45 minutes): one member starts from v4 and runs one epoch over a third mix, weighted
#      to the rules the functional suite found weak (quoted and denounced hate, slurs thrown at a person,
#      identity slurs, hate between chat lines, threats, insults at groups the guide does not protect);
#      its soup with v4, compressed to v4's rank, was the shipped v5.
#   5. Two more rounds (about 40 minutes): two members start from v5 on two draws of a smaller mix that keeps
#      every rule of the guide in it (R5, averaged); two members start from R5 on two draws of the same mix with
#      threats at a person and threats because of identity, and both kinds of slur, at equal weight (R6,
#      averaged). The soup of R5 and R6, compressed to rank 96, was the shipped v6.
#   6. Round 7 (about 25 minutes): two members start from v6 on two draws of the mix with the four categories
#      added after v6 (identity slurs in passing, threats that name who someone is, veiled threats, dehumanising
#      words at unprotected groups) and the other side of each boundary; the soup of v6 and R7, compressed to
#      rank 96, was the shipped v7.
#   7. Rounds 11-13 (about 75 minutes): R11 from v7 adds words that only look like a slur and harsh words
#      about things; R12 from R11 leans back on counter-speech, negated hate and slurs thrown at a person; R13
#      from the soup of R11 and R12 adds hate quoted first and rejected after it, and negation in other words.
#      The soup of R11+R12 and R13, compressed to rank 96, was the shipped v8.
#   8. Round 16 (about 30 minutes): two members start from v8 on two draws of the mix with everyday questions
#      to a group, slurs thrown as insults in more forms and hate asked as a question, and with the mix's
#      disability slurs thrown at a person labelled offensive as the guide says (Davidson often said hate).
#      The soup of the two, at rank 96, was the shipped v9.
#   9. Rounds 17 and 18 (about 70 minutes): two pairs of members start from v9 on draws of the mix with more
#      Davidson tweets (300 per class) and identity slurs, at a person and in passing, weighted up (v9 had
#      learnt to call some of them offensive along with the disability slurs); R18 also weights threats,
#      self-harm incitement and profanity up. The shipped adapter is the soup of the four, at rank 96 (58 MB).
#
# MODBOT_INIT_ADAPTER=DIR skips step 1 and starts step 3 from DIR (an adapter of the same base model).
#
# Never trained on: the reference's 200 validation messages (seed_val.csv), the two held-out Davidson splits
# that ship with the adapter (test.jsonl, 300 messages, also the retrain gate's gold set; dev.jsonl, 450),
# and the project's functional suite (eval/functional.csv). All four are measured at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

DATA=${MODBOT_DATA:-data}
RUNS=${MODBOT_RUNS:-runs/shipped-adapter}
SHIPPED=model/adapters/smollm2-135m
MODBOT=.venv/bin/modbot
PYTHON=.venv/bin/python
VERSION=smollm2-135m-chat-v10
V9=smollm2-135m-chat-v9
V8=smollm2-135m-chat-v8
V7=smollm2-135m-chat-v7
V4=smollm2-135m-chat-v4
V5=smollm2-135m-chat-v5
V6=smollm2-135m-chat-v6

mkdir -p "$RUNS"
cp "$SHIPPED/test.jsonl" "$SHIPPED/dev.jsonl" "$RUNS/"   # the last step replaces $SHIPPED
HELD_OUT=(--exclude "$RUNS/test.jsonl" --exclude "$RUNS/dev.jsonl" --exclude "$DATA/seed_val.csv"
          --exclude eval/functional.csv)
EVALS=(--eval-on "$RUNS/test.jsonl" --eval-on "$RUNS/dev.jsonl" --eval-on "$DATA/seed_val.csv"
       --eval-on eval/functional.csv)

# -- 1. Davidson soup -----------------------------------------------------------------------------------
# One member: the reference's 1,000 merged with the whole pool, the held-out messages removed; every hate
# message left after a 150-per-class validation split (about 790) and 1,000 offensive and 1,000 neutral ones.
# Each seed draws its own sample of the two large classes, its own validation split and its own order.
member() {
  "$MODBOT" train --data "$DATA/seed_train.csv" --data "$DATA/davidson_pool.csv" --per-class 1000 \
    --val-per-class 150 --exclude "$RUNS/dev.jsonl" --eval-on "$RUNS/test.jsonl" --eval-on "$DATA/seed_val.csv" \
    --epochs 2 --threads 1 --seed "$1" --version "smollm2-135m-davidson-seed$1" --out "$RUNS/seed$1" --overwrite
}

INIT=${MODBOT_INIT_ADAPTER:-}
if [[ -z "$INIT" ]]; then
  pids=()
  for seed in 1 2 3; do
    member "$seed" > "$RUNS/seed$seed.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid" || { echo "a member failed: see $RUNS/seed*.log" >&2; exit 1; }
  done
  "$MODBOT" soup "$RUNS/seed1" "$RUNS/seed2" "$RUNS/seed3" --version smollm2-135m-davidson-soup \
    --out "$RUNS/davidson-soup" --overwrite
  INIT="$RUNS/davidson-soup"
fi

# -- 2. The mix -----------------------------------------------------------------------------------------
# Obfuscated and injected variants are drawn from the hateful and offensive messages of every source but
# the held-out ones (and from the templated ones).
MIX=(--data-dir "$DATA" "${HELD_OUT[@]}" --davidson-per-class 400 --wiki-neutral 250 --seed 0)
"$PYTHON" training/recipes/mix.py "${MIX[@]}" --out "$RUNS/sources.jsonl"
"$MODBOT" augment --seed 0 --per-category 35 --obfuscate-from "$RUNS/sources.jsonl" --obfuscate-count 300 \
  --inject-count 100 --out "$RUNS/augment.jsonl"
"$PYTHON" training/recipes/mix.py "${MIX[@]}" --augment "$RUNS/augment.jsonl" --out "$RUNS/mix.jsonl"

# -- 3. Chat adapter ------------------------------------------------------------------------------------
# Two members start from the soup's weights with their own validation split and order (one thread each, at
# once); their soup (A) takes a second, gentler pass over a second draw of the mix (C); the shipped adapter
# is the soup of A and C.
chat_member() {
  "$MODBOT" train --data "$RUNS/mix.jsonl" --init-adapter "$INIT" --val-per-class 40 "${HELD_OUT[@]}" \
    --epochs 1 --lr 1e-3 --threads 1 --seed "$1" --version "$V4-seed$1" --out "$RUNS/chat$1" --overwrite
}
pids=()
for seed in 1 2; do
  chat_member "$seed" > "$RUNS/chat$seed.log" 2>&1 &
  pids+=($!)
done
for pid in "${pids[@]}"; do
  wait "$pid" || { echo "a member failed: see $RUNS/chat*.log" >&2; exit 1; }
done
"$MODBOT" soup "$RUNS/chat1" "$RUNS/chat2" --version "$V4" --out "$RUNS/chatA" --overwrite

MIX2=(--data-dir "$DATA" "${HELD_OUT[@]}" --davidson-per-class 300 --wiki-neutral 100 --toxigen-hate 200 --seed 1)
"$PYTHON" training/recipes/mix.py "${MIX2[@]}" --out "$RUNS/sources2.jsonl"
"$MODBOT" augment --seed 1 --per-category 45 --obfuscate-from "$RUNS/sources2.jsonl" --obfuscate-count 150 \
  --inject-count 60 --out "$RUNS/augment2.jsonl"
"$PYTHON" training/recipes/mix.py "${MIX2[@]}" --augment "$RUNS/augment2.jsonl" --out "$RUNS/mix2.jsonl"
"$MODBOT" train --data "$RUNS/mix2.jsonl" --init-adapter "$RUNS/chatA" --val-per-class 30 "${HELD_OUT[@]}" \
  --epochs 1 --lr 5e-4 --threads 2 --seed 3 --version "$V4-round2" --out "$RUNS/chatC" --overwrite
"$MODBOT" soup "$RUNS/chatA" "$RUNS/chatC" --version "$V4" --threads 2 --out "$RUNS/v4" --overwrite

# -- 4. Guide round -------------------------------------------------------------------------------------
MIX3=(--data-dir "$DATA" "${HELD_OUT[@]}" --davidson-per-class 300 --wiki-neutral 60 --toxigen-hate 120 --seed 2)
"$PYTHON" training/recipes/mix.py "${MIX3[@]}" --out "$RUNS/sources3.jsonl"
"$MODBOT" augment --seed 2 --per-category 18 --category counter_quote=60 --category counter_denounce=45 \
  --category negated_hate=30 --category insult_nonprotected_group=50 --category slur_as_insult=70 \
  --category hate_slur_identity=70 --category hate_between_chat=60 --category threat_person=50 \
  --category everyday_chat=30 --category hate_as_question=0 --obfuscate-from "$RUNS/sources3.jsonl" \
  --obfuscate-count 150 --inject-count 40 --out "$RUNS/augment3.jsonl"
"$PYTHON" training/recipes/mix.py "${MIX3[@]}" --augment "$RUNS/augment3.jsonl" --out "$RUNS/mix3.jsonl"
"$MODBOT" train --data "$RUNS/mix3.jsonl" --init-adapter "$RUNS/v4" --val-per-class 30 "${HELD_OUT[@]}" \
  --epochs 1 --lr 5e-4 --threads 2 --seed 4 --version "$V5-round3" --out "$RUNS/round3" --overwrite
"$MODBOT" soup "$RUNS/v4" "$RUNS/round3" --version "$V5" --max-rank 96 --out "$RUNS/v5" --overwrite

# -- 5. Two more rounds ---------------------------------------------------------------------------------
# One member of a round: its own draw of the sources and of the augmentation (mix seed $1), weighted by the
# categories in $4, trained one epoch from $2 at learning rate $3 with training seed $5, written to $6 and
# named after $7, the release the round is part of.
ROUND_DAVIDSON=200  # Davidson tweets per class in a round's mix; step 9 raises it
SMALL_MIX=(--data-dir "$DATA" "${HELD_OUT[@]}" --wiki-neutral 60 --toxigen-hate 100 --toxigen-neutral 300
           --wiki-flagged 150)
MIX_RULES=()  # options of mix.py that relabel by the guide; step 8 sets them
round_member() {
  local mix_seed=$1 init=$2 lr=$3 weights=$4 seed=$5 out=$6 release=$7
  "$PYTHON" training/recipes/mix.py "${SMALL_MIX[@]}" --davidson-per-class "$ROUND_DAVIDSON" --seed "$mix_seed" \
    --out "$RUNS/sources$mix_seed.jsonl"
  # shellcheck disable=SC2086  # $weights is a list of --category options
  "$MODBOT" augment --seed "$mix_seed" --per-category 15 $weights --obfuscate-from "$RUNS/sources$mix_seed.jsonl" \
    --obfuscate-count 90 --inject-count 25 --out "$RUNS/augment$mix_seed.jsonl"
  "$PYTHON" training/recipes/mix.py "${SMALL_MIX[@]}" --davidson-per-class "$ROUND_DAVIDSON" --seed "$mix_seed" \
    --augment "$RUNS/augment$mix_seed.jsonl" "${MIX_RULES[@]}" --out "$RUNS/mix$mix_seed.jsonl"
  "$MODBOT" train --data "$RUNS/mix$mix_seed.jsonl" --init-adapter "$init" --val-per-class 25 "${HELD_OUT[@]}" \
    --epochs 1 --lr "$lr" --threads 1 --seed "$seed" --version "$release-$(basename "$out")" --out "$out" --overwrite
}
# Both rounds keep every category in the mix; R5 leans on the rules v5 was weakest at, R6 then puts the two
# sides of each hard boundary (a threat with or without an identity angle, a slur at a person or at a group)
# at equal weight, because leaning on one side moved the model to it.
R5_WEIGHTS="--category counter_quote=55 --category counter_denounce=40 --category negated_hate=25
  --category insult_nonprotected_group=55 --category slur_as_insult=60 --category hate_slur_identity=60
  --category hate_between_chat=30 --category threat_person=60 --category hate_as_question=50
  --category hate_threat_identity=30 --category everyday_chat=25 --category criticism_not_people=25"
R6_WEIGHTS="--category counter_quote=60 --category counter_denounce=40 --category negated_hate=25
  --category insult_nonprotected_group=50 --category slur_as_insult=45 --category hate_slur_identity=60
  --category hate_between_chat=25 --category threat_person=50 --category hate_as_question=30
  --category hate_threat_identity=60 --category everyday_chat=25 --category criticism_not_people=20
  --category benign_violent_words=25"
# pair RELEASE NAME INIT LR WEIGHTS MIX_SEED_A MIX_SEED_B [TRAIN_SEED_A TRAIN_SEED_B]: two members of one round
# at once, then their soup. The training seeds default to the mix seeds plus one.
pair() {
  local release=$1 name=$2 init=$3 lr=$4 weights=$5 a=$6 b=$7 seed_a=${8:-$(($6 + 1))} seed_b=${9:-$(($7 + 1))}
  round_member "$a" "$init" "$lr" "$weights" "$seed_a" "$RUNS/${name}a" "$release" > "$RUNS/${name}a.log" 2>&1 &
  local first=$!
  round_member "$b" "$init" "$lr" "$weights" "$seed_b" "$RUNS/${name}b" "$release" > "$RUNS/${name}b.log" 2>&1 &
  local second=$!
  wait "$first" && wait "$second" || { echo "a member of $name failed: see $RUNS/$name*.log" >&2; exit 1; }
  "$MODBOT" soup "$RUNS/${name}a" "$RUNS/${name}b" --version "$release-$name" --max-rank 96 --out "$RUNS/$name" \
    --overwrite
}
pair "$V6" round5 "$RUNS/v5" 3e-4 "$R5_WEIGHTS" 5 7
pair "$V6" round6 "$RUNS/round5" 2e-4 "$R6_WEIGHTS" 9 11
"$MODBOT" soup "$RUNS/round5" "$RUNS/round6" --version "$V6" --max-rank 96 --out "$RUNS/v6" --overwrite

# -- 6. Round 7 -----------------------------------------------------------------------------------------
# The categories added after v6 are opt-in (`modbot augment` makes them only when named), so steps 2-5 above
# write the same files as before. Each is weighted with the other side of its boundary: identity slurs in
# passing against slurs thrown at a person, threats naming who someone is against plain and veiled threats,
# dehumanising words at unprotected groups against the same words at protected ones.
R7_WEIGHTS="--category hate_slur_in_passing=45 --category hate_threat_attribute=45 --category threat_person_veiled=45
  --category dehumanise_nonprotected_group=45 --category threat_person=35 --category hate_threat_identity=35
  --category hate_slur_identity=35 --category slur_as_insult=35 --category insult_nonprotected_group=30
  --category hate_dehumanising=30 --category counter_quote=40 --category counter_denounce=30
  --category negated_hate=20 --category benign_violent_words=30 --category everyday_chat=25
  --category hate_as_question=25"
pair "$V7" round7 "$RUNS/v6" 2e-4 "$R7_WEIGHTS" 13 15
"$MODBOT" soup "$RUNS/v6" "$RUNS/round7" --version "$V7" --max-rank 96 --out "$RUNS/v7" --overwrite

# -- 7. Rounds 11-13 ------------------------------------------------------------------------------------
# (Rounds 8-10 were tried and not kept: docs/training.md.) R11 adds two opt-in categories the suite found
# missing (words that only look like a slur; harsh words about animals, pests, objects, food or weather).
# It called more quoted counter-speech hate, so R12 starts from it leaning back on counter-speech, negated
# hate and slurs thrown at a person; R13 starts from their soup with two more opt-in categories: hate quoted
# first and rejected after it, and negation in other words than "i don't think".
R11_WEIGHTS="$R7_WEIGHTS --category slur_lookalike_words=40 --category hostility_at_things=40"
# A later --category NAME=N replaces an earlier one, so each round's weights extend the round before.
R12_WEIGHTS="$R11_WEIGHTS --category hostility_at_things=30
  --category counter_quote=55 --category counter_denounce=40 --category negated_hate=40
  --category slur_as_insult=45 --category group_question=35"
R13_WEIGHTS="$R12_WEIGHTS --category counter_quote_leading=45 --category negated_hate_varied=40
  --category hostility_at_things=25"
pair "$V8" round11 "$RUNS/v7" 2e-4 "$R11_WEIGHTS" 29 31 1 2
pair "$V8" round12 "$RUNS/round11" 2e-4 "$R12_WEIGHTS" 33 35 1 2
"$MODBOT" soup "$RUNS/round11" "$RUNS/round12" --version "$V8-r11-12" --max-rank 96 --out "$RUNS/r11-12" \
  --overwrite
pair "$V8" round13 "$RUNS/r11-12" 2e-4 "$R13_WEIGHTS" 37 39 1 2
"$MODBOT" soup "$RUNS/r11-12" "$RUNS/round13" --version "$V8" --max-rank 96 --out "$RUNS/v8" --overwrite

# -- 8. Round 16 ----------------------------------------------------------------------------------------
# (Rounds 14 and 15 were tried and not kept: docs/training.md.) Round 13's weights with two opt-in
# categories (practical questions to a group about food, language, dress or customs; slurs thrown at a
# person in more forms) and hate asked as a question weighted up, so the neutral questions do not pull it
# down. The mix's disability slurs thrown at one person are labelled offensive (training/guide_labels.py):
# weighting the offensive side up alone never moved them, because the same words also came labelled hate.
R16_WEIGHTS="$R13_WEIGHTS --category group_question_everyday=45 --category slur_as_insult_varied=45
  --category hate_as_question=45"
MIX_RULES=(--disability-insults-offensive)
pair "$V9" round16 "$RUNS/v8" 2e-4 "$R16_WEIGHTS" 47 53 1 2
# -- 9. Rounds 17 and 18 --------------------------------------------------------------------------------
# v9 called offensive many tweets that throw a racial or homophobic slur at a person, which the guide calls
# hate: its relabelled disability slurs pulled the other slurs along. Both rounds start from v9 with more
# Davidson tweets and the identity-slur categories weighted up, questions about a group weighted with them;
# R18 also weights threats and self-harm incitement at a person and untargeted profanity up, the offensive
# side R17 moved towards neutral. The four members are averaged, not the two rounds' soups: they start from
# the same weights and an even average of four is what was measured.
ROUND_DAVIDSON=300
R17_WEIGHTS="$R16_WEIGHTS --category hate_slur_in_passing=60 --category hate_slur_identity=60
  --category group_question=45"
R18_WEIGHTS="$R17_WEIGHTS --category threat_person=50 --category self_harm_incitement=35
  --category profanity_untargeted=30"
pair "$VERSION" round17 "$RUNS/round16" 2e-4 "$R17_WEIGHTS" 59 61 1 2
pair "$VERSION" round18 "$RUNS/round16" 2e-4 "$R18_WEIGHTS" 67 71 1 2
"$MODBOT" soup "$RUNS/round17a" "$RUNS/round17b" "$RUNS/round18a" "$RUNS/round18b" --version "$VERSION" \
  --max-rank 96 "${EVALS[@]}" --threads 2 --out "$RUNS/chat" --overwrite
cp "$RUNS/test.jsonl" "$RUNS/dev.jsonl" "$RUNS/chat/"
rm -rf "$SHIPPED.old" && mv "$SHIPPED" "$SHIPPED.old" && mv "$RUNS/chat" "$SHIPPED" && rm -rf "$SHIPPED.old"
echo "installed $SHIPPED"
