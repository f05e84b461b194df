#!/usr/bin/env bash
# Rebuild worlds/coinrun from nothing, on a CPU: record CoinRun footage, train the tokenizer and
# the world (the LAM first, then the dynamics on its frozen actions), export, store the key map,
# ship held-out prompts, evaluate.
#
#   source .venv/bin/activate && bash worlds/build_coinrun.sh     # WORK=build/coinrun by default
#
# Rerunning resumes: finished steps are skipped, a killed training run continues from its last
# checkpoint. Measured on 2-core CPUs (an AMD EPYC, then an Intel Xeon): recording ~30 min, tokenizer
# ~40 min (1 thread), world 6,000 steps ~4.5 h (1 thread, ~2.5 s a step; it ran over three
# sessions, resumed), the decoder 9,000 steps ~3.3 h (2 threads: 1.31 s a step at 5 blocks). The world
# it writes replaces worlds/coinrun (config.json, model.safetensors, prompts/); the model card
# worlds/coinrun/README.md is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-build/coinrun}
WORLD=${WORLD:-worlds/coinrun}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

source worlds/lib.sh

# The tokenizer's footage: a sticky random policy biased to the right (data_pipeline/coinrun.py), hard
# mode, 64x64, every frame. Training levels 0-9999; held-out levels 100000-100199 are only evaluated on.
record "$WORK/data/coinrun-train" --max-steps 300 --episodes 600 --start-level 0 --num-levels 1000 --seed 1
# The world's footage: uniform random actions, each held 4 game frames (frame skip 4: one world step is
# 4 game frames, and a key moves the view ~5 px instead of ~1.3, which the LAM can see)
record "$WORK/data/coinrun4-big" --policy uniform --frame-skip 4 --max-steps 200 --episodes 3200 \
    --start-level 0 --num-levels 10000 --seed 5
# what genie eval reads: held-out levels at the same frame skip, the real game's held keys on them, and
# footage of training levels for the judge (a supervised 2-frame model of the true actions, eval only)
record "$WORK/data/coinrun4-heldout" --policy uniform --frame-skip 4 --max-steps 200 --episodes 120 \
    --start-level 100000 --num-levels 200 --seed 2
record "$WORK/data/coinrun4-heldout/hold" --policy hold --frame-skip 4 --max-steps 16 --episodes 60 \
    --start-level 100000 --num-levels 200 --seed 4
record "$WORK/data/coinrun4-train" --policy uniform --frame-skip 4 --max-steps 200 --episodes 800 \
    --start-level 0 --num-levels 10000

train tokenizer "$WORK/runs/tok" "$WORK/data/coinrun-train" --config configs/small/tokenizer.yaml
[[ -f $WORK/bundles/tok/config.json ]] || genie export "$WORK/runs/tok" --out "$WORK/bundles/tok"
train world "$WORK/runs/world" "$WORK/data/coinrun4-big" --config configs/long/world.yaml --tokenizer "$WORK/bundles/tok"
# the tokenizer's decoder grown from 3 to 5 blocks and trained further on the world's footage, its
# encoder and codebook frozen: the tokens (so the world trained on them) do not change, the frames
# drawn from them get sharper (the shipped decoder got there in three legs, 9,000 steps in all, see
# the model card)
train tokenizer "$WORK/runs/decoder" "$WORK/data/coinrun4-big" --config configs/small/tokenizer.yaml \
    train.init="$WORK/bundles/tok" train.decoder_only=true model.decoder_depth=5 train.batch_size=16 \
    train.max_steps=9000 train.lr=5e-4 train.warmup_steps=200 train.ckpt_every=400 train.val_every=400 train.val_batches=16

# ship: weights with the sampler measured best for this world (one greedy MaskGIT round: it held the
# world together better than 2 or 3 rounds, see the model card; ~40 frames/s on 2 CPU cores) over a
# 16-frame window (twice the training clips: it drifts less than 8), the key map measured from the
# model's own motion, 8 held-out frames as prompts
genie export "$WORK/runs/world" --out "$WORK/bundles/world" --force sample.steps=1 sample.temperature=0 sample.context=16
genie export "$WORK/runs/decoder" --world "$WORK/bundles/world" --out "$WORK/bundles/world" --force
python worlds/make_prompts.py "$WORK/data/coinrun4-heldout" --out "$WORK/bundles/world/prompts"
genie keymap "$WORK/bundles/world"  # from the model's own motion, rolled out from those prompts (not a gray frame)
mkdir -p "$WORLD" && rm -rf "$WORLD/prompts"
cp -r "$WORK/bundles/world/config.json" "$WORK/bundles/world/model.safetensors" "$WORK/bundles/world/prompts" "$WORLD/"
[[ -f $WORK/judge/config.json ]] || genie judge train "$WORK/data/coinrun4-train" --out "$WORK/judge" --history 0
genie eval "$WORLD" --data "$WORK/data/coinrun4-heldout" --judge "$WORK/judge" --json "$WORK/eval.json"
