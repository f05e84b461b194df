#!/usr/bin/env bash
# A CoinRun world from nothing in one leased-GPU run (about 8 minutes on an H200, planned: not yet run on one): record frame-skip-4
# footage on the machine's cores, time a few training steps to size the runs (worlds/plan_steps.py),
# train the sprint tokenizer and world (configs/sprint: the LAM first, then the dynamics on its frozen
# actions, bf16 on the GPU, each run capped by train.max_minutes), export with the shipped sampler, store the key
# map and the held-out prompts, and judge it with genie eval.
#
#   bash worlds/build_coinrun_gpu.sh        # WORK=build/coinrun-gpu; OUT=$WORK/out unless set
#
# What comes back lands in OUT as it is made (a run stopped by its time limit still returns what
# was done): build.log, tokenizer.tar.part-* and world.tar.part-* (the bundles, tar split in 15 MB
# pieces: `cat world.tar.part-* | tar -x -C DIR`), tokenizer-metrics.csv, world-metrics.csv,
# eval.json (the bundle's sampler: 3 greedy rounds) and eval-1round.json (1 round): 7-8 files, within
# the device's 8 returned.
# A bare GPU machine has no network, so what procgen needs travels in CARRY (default .carry, kept out
# of git by .gitignore and named in the device call's carry list):
#   CARRY/wheels/*.whl  procgen-mirror 0.10.7, gym3, gym, gym_notices, cffi, pycparser for the machine's
#                       Python (`pip download --no-deps --only-binary=:all: --python-version 3.12 ...`;
#                       gym is an sdist: `pip wheel --no-deps gym==0.26.2`), installed into /tmp/site
#                       when procgen is missing
#   CARRY/lib.tar.xz    a folder of the shared libraries procgen's libenv.so links (libGL, libGLX,
#                       libGLdispatch, X11, xcb, Xau, Xdmcp, bsd, md, glib, gthread, pcre2), put on
#                       LD_LIBRARY_PATH only when `ldd libenv.so` finds them missing
#   CARRY/judge         a judge bundle for frame-skip-4 footage (genie judge train --history 0); JUDGE
#                       names another; without either one is trained on the footage (minutes on CPU)
#
# A dry run on a CPU, with tiny settings (a few minutes):
#   EPISODES=24 HELDOUT_EPISODES=12 TOKENIZER_STEPS=4 WORLD_STEPS=6 LAM_STEPS=3 EVAL_CLIPS=4 \
#     bash worlds/build_coinrun_gpu.sh train.batch_size=2 train.num_workers=0
# (arguments after the script are extra overrides for both training runs). Rerunning resumes.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-build/coinrun-gpu}
OUT=${OUT:-$WORK/out}
EPISODES=${EPISODES:-8000}                  # ~1M frames at frame skip 4
HELDOUT_EPISODES=${HELDOUT_EPISODES:-120}
WORKERS=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}
TOKENIZER_MINUTES=${TOKENIZER_MINUTES:-2.0}
WORLD_MINUTES=${WORLD_MINUTES:-2.6}
EVAL_CLIPS=${EVAL_CLIPS:-64}
mkdir -p "$OUT" "$WORK"
exec > >(tee -a "$OUT/build.log") 2>&1
start=$SECONDS
stamp() { echo "== $(( SECONDS - start )) s: $*"; }

# a bare GPU machine has no network: procgen comes from CARRY (see the header)
CARRY=${CARRY:-.carry}
if ! python3 -c "import procgen" 2>/dev/null; then
  compgen -G "$CARRY/wheels/*.whl" >/dev/null || { echo "build_coinrun_gpu.sh: procgen is not installed and $CARRY/wheels holds no wheels" >&2; exit 1; }
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$CARRY"/wheels/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
libenv=$(python3 -c "import os, procgen; print(os.path.join(os.path.dirname(procgen.__file__), 'data/prebuilt/libenv.so'))" 2>/dev/null)
if ldd "$libenv" | grep -q "not found" && [[ -f $CARRY/lib.tar.xz ]]; then  # procgen's game needs libGL, X11, glib
  mkdir -p /tmp/carried-lib && tar -xJf "$CARRY/lib.tar.xz" -C /tmp/carried-lib --strip-components 1
  export LD_LIBRARY_PATH=/tmp/carried-lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
fi
if ldd "$libenv" | grep "not found"; then echo "build_coinrun_gpu.sh: $libenv misses the libraries above" >&2; exit 1; fi
if [[ -z ${JUDGE:-} && -f $CARRY/judge/config.json ]]; then JUDGE=$CARRY/judge; fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} WANDB_MODE=offline
genie() { python3 -m genie "$@"; }
source worlds/lib.sh
ship() {  # ship NAME DIR: DIR as a tar in 15 MB parts in OUT (the device returns files of <= 16 MiB)
  rm -f "$OUT/$1".tar.part-*
  tar -C "$2" -cf - . | split -b 15M - "$OUT/$1.tar.part-"
}
metrics() {  # metrics NAME RUN: the run's newest CSV log into OUT
  local csv; csv=$(ls -t "$2"/logs/*/metrics.csv 2>/dev/null | head -1) && cp "$csv" "$OUT/$1-metrics.csv" || true
}
python3 -c "import torch; print('torch', torch.__version__, 'cuda' if torch.cuda.is_available() else 'cpu', \
  torch.cuda.get_device_name() if torch.cuda.is_available() else '')"

# footage: every action equally likely, each held for 4 game frames; training levels 0-9999, the
# held-out levels 100000-100199 only ever evaluated on (recorded by one process, so the same
# footage as the CPU recipes' data/coinrun4-heldout in benchmarks/RESULTS.md)
stamp "footage ($WORKERS processes)"
record "$WORK/data/train" --policy uniform --frame-skip 4 --max-steps 200 --episodes "$EPISODES" \
    --num-levels 10000 --seed 3 --workers "$WORKERS"
record "$WORK/data/heldout" --policy uniform --frame-skip 4 --max-steps 200 --episodes "$HELDOUT_EPISODES" \
    --start-level 100000 --num-levels 200 --seed 2
record "$WORK/data/heldout/hold" --policy hold --frame-skip 4 --max-steps 16 --episodes 60 \
    --start-level 100000 --num-levels 200 --seed 4
if [[ -z ${JUDGE:-} ]]; then
  JUDGE=$WORK/judge
  [[ -f $JUDGE/config.json ]] || genie judge train "$WORK/data/train" --out "$JUDGE" --history 0
fi

if [[ -z ${TOKENIZER_STEPS:-} || -z ${WORLD_STEPS:-} || -z ${LAM_STEPS:-} ]]; then
  stamp "timing training steps"
  read -r TOKENIZER_STEPS WORLD_STEPS LAM_STEPS < <(python3 worlds/plan_steps.py --scale sprint \
      --tokenizer-minutes "$TOKENIZER_MINUTES" --world-minutes "$WORLD_MINUTES")
  [[ -n ${LAM_STEPS:-} ]] || { echo "build_coinrun_gpu.sh: worlds/plan_steps.py planned nothing (see above)" >&2; exit 1; }
fi
stamp "tokenizer: $TOKENIZER_STEPS steps (cap $TOKENIZER_MINUTES min)"
train tokenizer "$WORK/runs/tok" "$WORK/data/train" --config configs/sprint/tokenizer.yaml \
    train.max_steps="$TOKENIZER_STEPS" train.max_minutes="$TOKENIZER_MINUTES" "$@"
metrics tokenizer "$WORK/runs/tok"
[[ -f $WORK/bundles/tok/config.json ]] || genie export "$WORK/runs/tok" --out "$WORK/bundles/tok"
ship tokenizer "$WORK/bundles/tok"

stamp "world: $WORLD_STEPS steps, the first $LAM_STEPS the LAM's (cap $WORLD_MINUTES min)"
train world "$WORK/runs/world" "$WORK/data/train" --config configs/sprint/world.yaml --tokenizer "$WORK/bundles/tok" \
    train.max_steps="$WORLD_STEPS" train.lam_steps="$LAM_STEPS" train.max_minutes="$WORLD_MINUTES" "$@"
metrics world "$WORK/runs/world"
genie export "$WORK/runs/world" --out "$WORK/bundles/world" --force
python3 worlds/make_prompts.py "$WORK/data/heldout" --out "$WORK/bundles/world/prompts"
genie keymap "$WORK/bundles/world"  # from the model's own motion, rolled out from those prompts
ship world "$WORK/bundles/world"

stamp "genie eval"
genie eval "$WORK/bundles/world" --data "$WORK/data/heldout" --judge "$JUDGE" --clips "$EVAL_CLIPS" --json "$OUT/eval.json"
# and with one greedy round, which the CPU-trained worlds measured best on all but the keys, so one
# device run shows which sampler this better-trained world should ship with (a second eval costs seconds)
genie eval "$WORK/bundles/world" --data "$WORK/data/heldout" --judge "$JUDGE" --clips "$EVAL_CLIPS" --steps 1 \
    --json "$OUT/eval-1round.json"
stamp "done"
