# The steps the world build scripts share (sourced by build_coinrun.sh and build_coinrun_gpu.sh).
# Each skips what is done, so rerunning a script resumes where it stopped.

record() {  # record OUT ARGS...: genie record --env coinrun ARGS into OUT, skipped when OUT holds shards
  local out=$1; shift
  compgen -G "$out/*.h5" >/dev/null || genie record --env coinrun --out "$out" "$@"
}

train() {  # train STAGE RUN DATA ARGS...: --resume when RUN has a checkpoint, else a new run with ARGS
  local stage=$1 run=$2 data=$3; shift 3
  if [[ -f $run/checkpoints/last.ckpt ]]; then
    genie train "$stage" --resume --out "$run" --data "$data" train.progress_bar=false
  else
    genie train "$stage" --restart --out "$run" --data "$data" "$@" train.progress_bar=false
  fi
}
