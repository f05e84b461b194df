#!/usr/bin/env bash
# Rebuild worlds/coinrun from nothing, on a CPU: record CoinRun footage, train the tokenizer and
# the world (LAM + dynamics), export, store the key map, ship held-out prompts, evaluate.
#
#   source .venv/bin/activate && bash worlds/build_coinrun.sh     # WORK=build/coinrun by default
#
# Rerunning resumes: finished steps are skipped, a killed training run continues from its last
# checkpoint. Measured on a 2-core AMD EPYC: recording ~5 min, tokenizer ~40 min (1 thread), world
# 2,000 steps ~1.5 h (2 threads, ~2.5 s a step). The world it writes replaces worlds/coinrun (config.json,
# model.safetensors, prompts/); the model card worlds/coinrun/README.md is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-build/coinrun}
WORLD=${WORLD:-worlds/coinrun}

source worlds/lib.sh

# footage: a sticky random policy biased to the right (data_pipeline/coinrun.py), hard mode, 64x64.
# Training levels 0-9999; held-out levels 100000-100199 are only ever evaluated on.
record "$WORK/data/coinrun-train" --max-steps 300 --episodes 600 --start-level 0 --num-levels 1000 --seed 1
record "$WORK/data/coinrun-1m" --max-steps 300 --episodes 10000 --start-level 0 --num-levels 10000 --seed 3
record "$WORK/data/coinrun-heldout" --max-steps 300 --episodes 60 --start-level 100000 --num-levels 200 --seed 2
# what genie eval reads: held-out levels played uniformly at random, the real game's held keys on them,
# and footage of training levels for the judge (a supervised model of the true actions, eval only)
record "$WORK/data/coinrun-eval" --max-steps 300 --episodes 100 --start-level 100000 --num-levels 200 --policy uniform --seed 2
record "$WORK/data/coinrun-eval/hold" --episodes 60 --max-steps 16 --start-level 100000 --num-levels 200 \
    --policy hold --seed 4
record "$WORK/data/coinrun-judge" --max-steps 300 --episodes 400 --start-level 0 --num-levels 10000 --policy uniform --seed 11

train tokenizer "$WORK/runs/tok" "$WORK/data/coinrun-train" --config configs/small/tokenizer.yaml
[[ -f $WORK/bundles/tok/config.json ]] || genie export "$WORK/runs/tok" --out "$WORK/bundles/tok"
train world "$WORK/runs/world" "$WORK/data/coinrun-1m" --config configs/small/world.yaml --tokenizer "$WORK/bundles/tok"

# ship: weights with the sampler measured best for this world (one greedy MaskGIT round: it held
# the world together better than 3 rounds or temperature 0.5, see the model card; ~40 frames/s on 2
# CPU cores), the key map measured from the model's own motion (the map from true actions
# put left, right and noop on one latent action: see the model card), 8 held-out frames as prompts
genie export "$WORK/runs/world" --out "$WORK/bundles/world" --force sample.steps=1 sample.temperature=0
genie keymap "$WORK/bundles/world"
python worlds/make_prompts.py "$WORK/data/coinrun-heldout" --out "$WORK/bundles/world/prompts"
mkdir -p "$WORLD" && rm -rf "$WORLD/prompts"
cp -r "$WORK/bundles/world/config.json" "$WORK/bundles/world/model.safetensors" "$WORK/bundles/world/prompts" "$WORLD/"
[[ -f $WORK/judge/config.json ]] || genie judge train "$WORK/data/coinrun-judge" --out "$WORK/judge"
genie eval "$WORLD" --data "$WORK/data/coinrun-eval" --judge "$WORK/judge" --json "$WORK/eval.json"
