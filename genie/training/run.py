"""`genie train` and `genie export`: build a stage's Trainer from a config, run it, export it.

A run folder holds:
    config.yaml            the resolved config (sections model:, train:) the run was started with
    run.json               stage, data, genie version
    checkpoints/last.ckpt  the latest checkpoint (written atomically); --resume continues from it
    logs/version_N/        CSV metrics (one version per start or resume); wandb/ when enabled
    samples/               reconstruction grids (recon-latest.png: originals above reconstructions)
These (RUN_ENTRIES) are all a run writes there: --restart deletes them and nothing else.
Ctrl-C or SIGTERM stops a run with a checkpoint of its last whole step (StopOnSignal).

The same command trains on one process or many (train.devices, train.num_nodes, train.strategy;
see README "Training beyond one machine"): every rank runs train_stage, and only global rank 0
checks and writes the run folder; Lightning writes checkpoints and logs from rank 0.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from genie.config import build_sections, load_yaml, parse_overrides
from genie.errors import GenieError
from genie.files import make_out_dir, write_text_atomic
from genie.version import __version__


@dataclass
class Stage:
    module: type
    sections: dict[str, type]  # YAML section -> config dataclass


def _stages() -> dict[str, Stage]:
    from genie.models.dynamics import DynamicsConfig
    from genie.models.lam import LAMConfig
    from genie.models.tokenizer import TokenizerConfig
    from genie.training.common import TrainConfig
    from genie.training.tokenizer_module import TokenizerModule
    from genie.training.world_module import WorldModule
    from genie.world import SampleConfig

    return {
        "tokenizer": Stage(TokenizerModule, {"model": TokenizerConfig, "train": TrainConfig}),
        "world": Stage(WorldModule, {"lam": LAMConfig, "dynamics": DynamicsConfig, "train": TrainConfig,
                                     "sample": SampleConfig}),
    }


def _derive_world_sections(sections: dict[str, Any], tokenizer_cfg, source: str) -> None:
    """Fill what the tokenizer and the LAM decide (frame size, vocabulary, grid, action count)."""
    lam, dyn, train, sample = sections["lam"], sections["dynamics"], sections["train"], sections["sample"]
    lam.height, lam.width = tokenizer_cfg.height, tokenizer_cfg.width
    dyn.vocab_size, (dyn.grid_h, dyn.grid_w) = tokenizer_cfg.codebook_size, tokenizer_cfg.grid
    dyn.num_actions = lam.num_actions
    if sample.context > train.clip_len or sample.lam_context > train.clip_len:
        raise GenieError(f"{source}: sample.context and sample.lam_context must be <= train.clip_len ({train.clip_len})")


class _DropAdverts(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()  # adverts, and the interrupt that genie reports itself
        return "Tip:" not in message and "Detected KeyboardInterrupt" not in message


class _Stdout:
    """Whatever sys.stdout is at the time of writing (a test may swap it)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


_STDOUT = _Stdout()


def _quiet_lightning() -> None:
    """Keep Lightning's useful lines (on stdout: stderr is for errors), drop its adverts and
    warnings that do not apply here."""
    for handler in logging.getLogger("lightning.pytorch").handlers:
        handler.addFilter(_DropAdverts())
        if type(handler) is logging.StreamHandler:
            handler.setStream(_STDOUT)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode.*")  # the frozen tokenizer
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty.*")  # a resumed run's own
    # a run resumed in another folder: it keeps one best and one last checkpoint there (no version counter)
    warnings.filterwarnings("ignore", message=r".*The dirpath has changed from.*")
    # clips are drawn at random: a run resumed mid-epoch loses nothing but the order of its draws
    warnings.filterwarnings("ignore", message=r".*resuming from a checkpoint that ended before the epoch ended.*")
    # usage counts are summed across ranks before they are logged
    warnings.filterwarnings("ignore", message=r".*self\.log\('val/(codebook|action)_usage'.*sync_dist=True.*")


def _is_rank_zero() -> bool:
    """Whether this process is global rank 0, known before the Trainer exists: Lightning reads the
    rank from the environment (RANK under torchrun, LOCAL_RANK in the processes its own launcher
    starts, SLURM_PROCID under srun); NODE_RANK > 0 marks the other nodes of a job it launches."""
    from lightning.pytorch.utilities import rank_zero_only

    return rank_zero_only.rank == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


# Model keys that change only what training feeds the model, not its shape: a run may go on with new ones.
RESUMABLE_KEYS = ("dynamics.context_noise", "dynamics.action_dropout", "dynamics.clean_history", "dynamics.own_context",
                  "dynamics.mask_low", "dynamics.mask_high")


def resolve_config(stage: str, config: str | None, overrides: list[str], out: Path, resume: bool,
                   tokenizer_cfg=None) -> dict[str, Any]:
    """-> one config dataclass per section (e.g. model, train), from the YAML (or the run's own
    config.yaml when resuming) plus overrides. On resume only train.* keys and RESUMABLE_KEYS
    (what shapes the training inputs, not the model) may change; other keys may be given with the
    run's own values (the starting command, repeated)."""
    spec = _stages()[stage]
    pairs = parse_overrides(overrides)
    if resume:
        saved = out / "config.yaml"
        raw, source = load_yaml(saved), str(saved)
        for key, value in pairs:  # the starting command may be repeated: only a new value is refused
            section, name = key.split(".", 1)
            had = (raw.get(section) or {}).get(name)
            if not key.startswith("train.") and key not in RESUMABLE_KEYS and value != had:
                raise GenieError(f"{out}: cannot change {key} when resuming (the run has {had!r}, asked "
                                 f"{value!r}; only train.* keys and {', '.join(RESUMABLE_KEYS)} may change)")
    else:
        if config is None:
            raise GenieError("--config is required to start a run")
        raw, source = load_yaml(config), str(config)
    sections = build_sections(raw, spec.sections, pairs, source)
    if stage == "world":
        _derive_world_sections(sections, tokenizer_cfg, source)
        if sections["train"].decoder_only:
            raise GenieError(f"{source}: train.decoder_only is for the tokenizer stage (the world stage never "
                             "trains its tokenizer)")
    else:
        for key in ("lam_steps", "freeze_lam"):
            if getattr(sections["train"], key):
                raise GenieError(f"{source}: train.{key} is for the world stage (the tokenizer has no LAM)")
    try:
        spec.module(**_module_kwargs(sections, tokenizer_cfg))
    except ValueError as err:
        raise GenieError(f"{source}: {err}") from None
    return sections


def _module_kwargs(sections: dict[str, Any], tokenizer_cfg=None) -> dict[str, Any]:
    kwargs = {name: asdict(cfg) for name, cfg in sections.items()}
    if tokenizer_cfg is not None:
        kwargs["tokenizer"] = asdict(tokenizer_cfg)
    return kwargs


RUN_ENTRIES = ("config.yaml", "run.json", "checkpoints", "logs", "samples", "wandb", "wandb_id.txt")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM stopped `genie train`; the message says what was saved and how to go on."""


def check_run_folder(out: Path, resume: bool, restart: bool) -> None:
    """GenieError unless `out` suits the request: a new run needs a folder holding no run,
    --resume one with a checkpoint, --restart anything (a run there is started afresh)."""
    last = out / "checkpoints" / "last.ckpt"
    has_run = last.exists() or any((out / name).exists() for name in ("config.yaml", "run.json"))
    if resume and restart:
        raise GenieError("pass --resume (continue from the last checkpoint) or --restart (start afresh), not both")
    if resume and not last.is_file():
        if has_run:
            raise GenieError(f"{out}: nothing to resume: the run there stopped before its first checkpoint "
                             f"(it has config.yaml but no checkpoints/last.ckpt); start it afresh with --restart")
        raise GenieError(f"{out}: nothing to resume (no run there, no checkpoints/last.ckpt); "
                         f"start a run without --resume")
    if not (resume or restart) and has_run:
        if last.is_file():
            raise GenieError(f"{out}: already holds a run with a checkpoint (checkpoints/last.ckpt); pass --resume "
                             f"to continue it, --restart to start it afresh (deleting its checkpoints and logs), "
                             f"or choose another --out")
        raise GenieError(f"{out}: holds a run that stopped before its first checkpoint (config.yaml, no "
                         f"checkpoints/last.ckpt); pass --restart to start it afresh there, or choose another --out")


def clear_run_folder(out: Path) -> None:
    """Delete what a run wrote in `out` (RUN_ENTRIES); any other file there is kept."""
    import shutil

    for name in RUN_ENTRIES:
        path = out / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()


def train_stage(
    stage: str,
    config: str | None,
    data: str,
    out: str,
    overrides: list[str] | None = None,
    resume: bool = False,
    tokenizer: str | None = None,
    restart: bool = False,
) -> Path:
    """Train `stage` on `data` into run folder `out`; returns the last checkpoint's path.

    `out` must hold no run, unless `resume` (continue from its last checkpoint) or `restart`
    (delete what the run there wrote, then start afresh). Ctrl-C or SIGTERM saves a checkpoint
    and raises TrainingInterrupted, whose message says how to continue."""
    from genie.training.common import StopOnSignal

    out = Path(out)
    rank_zero = _is_rank_zero()  # the other ranks start after rank 0 has written the run folder
    if rank_zero or resume:
        check_run_folder(out, resume, restart)
    with StopOnSignal(out / "checkpoints" / "last.ckpt") as stop:
        try:
            return _train(stage, config, data, out, overrides or [], resume, tokenizer, restart, rank_zero, stop)
        except KeyboardInterrupt:
            raise TrainingInterrupted(_interrupted(out, stop)) from None
        except SystemExit:
            if stop.signal is None:  # Lightning exits after a KeyboardInterrupt it caught
                raise
            raise TrainingInterrupted(_interrupted(out, stop)) from None


def _interrupted(out: Path, stop) -> str:
    last = out / "checkpoints" / "last.ckpt"
    what = f"{stop.signal or 'interrupt'}: "
    if stop.saved_step is not None:
        return f"{what}saved {last} at step {stop.saved_step}; continue with `genie train ... --out {out} --resume`"
    if last.is_file():
        return f"{what}the last checkpoint is {last}; continue with `genie train ... --out {out} --resume`"
    if (out / "config.yaml").exists():
        return f"{what}stopped before the first checkpoint; start it afresh with `genie train ... --out {out} --restart`"
    return f"{what}stopped before the run started; nothing was written to {out}"


def _train(stage: str, config: str | None, data: str, out: Path, overrides: list[str], resume: bool,
           tokenizer: str | None, restart: bool, rank_zero: bool, stop) -> Path:
    import lightning as L
    from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    from genie.training.common import AtomicCheckpointIO, Throughput, make_strategy, resolve_precision
    from genie.training.data import ClipDataModule

    last = out / "checkpoints" / "last.ckpt"
    tokenizer_model = _load_stage_tokenizer(stage, tokenizer, out, resume)
    tokenizer_cfg = None if tokenizer_model is None else tokenizer_model.config
    sections = resolve_config(stage, config, overrides, out, resume, tokenizer_cfg)
    cfg = sections["train"]
    strategy = make_strategy(cfg)
    frame_cfg = sections["model"] if stage == "tokenizer" else tokenizer_cfg

    init_weights = {}
    if cfg.init and not resume:
        init_weights = (bundle_weights(cfg.init, cfg.init_parts, sections) if stage == "world"
                        else bundle_weights(cfg.init, ["tokenizer"], {"tokenizer": sections["model"]}))
    datamodule = ClipDataModule(
        data, clip_len=cfg.clip_len, batch_size=cfg.batch_size, num_workers=cfg.num_workers,
        val_fraction=cfg.val_fraction, seed=cfg.seed,
    )
    datamodule.setup("fit")
    expected = (frame_cfg.height, frame_cfg.width, 3)
    if tuple(datamodule.frame_shape) != expected:
        raise GenieError(
            f"{data}: frames are {tuple(datamodule.frame_shape)} but the model expects {expected}; "
            f"set model.height/model.width or re-ingest with --size"
        )

    if rank_zero:
        if restart:
            clear_run_folder(out)
        make_out_dir(out)
        resolved = {name: asdict(section) for name, section in sections.items()}
        write_text_atomic(out / "config.yaml", yaml.safe_dump(resolved, sort_keys=False))
        meta = {"stage": stage, "data": str(data), "tokenizer": tokenizer, "genie_version": __version__}
        if not resume:
            write_text_atomic(out / "run.json", json.dumps(meta, indent=2))

    _quiet_lightning()
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = _stages()[stage].module(**_module_kwargs(sections, tokenizer_cfg), sample_dir=str(out / "samples"))
    if tokenizer_model is not None and not resume:
        module.tokenizer.load_state_dict(tokenizer_model.state_dict())
    for part, state in init_weights.items():
        target = getattr(module, part)
        (target.load_weights if part == "tokenizer" else target.load_state_dict)(state)  # a decoder may grow
    if cfg.compile:  # in place, so state_dict keys (checkpoints, bundles) are unchanged
        from torch.nn import ModuleDict

        parts = module.model.values() if isinstance(module.model, ModuleDict) else [module.model]
        for part in parts:  # the modules training calls (a ModuleDict itself is never called)
            part.compile()
    loggers: list = [CSVLogger(str(out), name="logs")]
    if cfg.wandb:
        loggers.append(_wandb_logger(out, cfg.wandb_project, rank_zero))
    callbacks = [
        ModelCheckpoint(
            dirpath=out / "checkpoints", filename="step{step:07d}", auto_insert_metric_name=False,
            every_n_train_steps=cfg.ckpt_every, save_last=True, save_top_k=1,
            enable_version_counter=False,  # a run moved to another folder keeps writing last.ckpt, not last-v1.ckpt
        ),
        Throughput(cfg.log_every, module.tokens_per_sample(cfg.clip_len)),
        LearningRateMonitor(logging_interval="step"),
        stop,
    ]
    trainer = L.Trainer(
        max_steps=cfg.max_steps, max_time=timedelta(minutes=cfg.max_minutes) if cfg.max_minutes else None,
        accelerator=cfg.accelerator, devices=cfg.devices, num_nodes=cfg.num_nodes,
        strategy=strategy, precision=resolve_precision(cfg), gradient_clip_val=cfg.grad_clip or None,
        log_every_n_steps=cfg.log_every, val_check_interval=min(cfg.val_every, cfg.max_steps),
        check_val_every_n_epoch=None, limit_val_batches=cfg.val_batches, num_sanity_val_steps=0,
        logger=loggers, callbacks=callbacks, plugins=[AtomicCheckpointIO()], default_root_dir=str(out),
        enable_progress_bar=cfg.progress_bar, enable_model_summary=False,
    )
    if trainer.is_global_zero:
        print(f"{stage}: {sum(p.numel() for p in module.model.parameters()) / 1e6:.2f}M parameters, "
              f"{'resuming from ' + str(last) if resume else 'new run'} -> {out}")
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None)
    trainer.save_checkpoint(last, weights_only=False)
    metrics = trainer.validate(module, datamodule=datamodule, verbose=False)
    if trainer.is_global_zero and metrics:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics[0].items())
        print(f"{stage}: step {trainer.global_step}: {shown}")
    return last


# keys that shape only the training (inputs, losses): a run may start from a bundle that differs in them
TRAINING_ONLY = {"dynamics": tuple(k.split(".", 1)[1] for k in RESUMABLE_KEYS), "tokenizer": ("beta", "restart_every")}
# keys that change what a network computes but not its weights: a run may start (train.init) from a bundle
# trained without them, and learns the difference (a warm start)
WARM_START = {"dynamics": ("spatial_rope",)}


def bundle_weights(bundle: str, parts: list[str], sections: dict[str, Any]) -> dict[str, dict]:
    """train.init: `parts` (lam, dynamics; tokenizer) of a bundle -> {part: state_dict}, checked before a run
    starts: GenieError naming the first config key in which the bundle's part differs from the run's."""
    from genie.bundle import component, read_bundle

    path = Path(bundle)
    config, weights = read_bundle(path)
    out = {}
    for part in parts:
        raw, out[part] = component(config, weights, part, path)
        differs = config_differs(part, raw, sections[part], path, may_differ=WARM_START.get(part, ()))
        if differs:
            k, theirs, ours = differs
            raise GenieError(f"train.init {path}: its {part}.{k} is {theirs!r} but this run's is {ours!r}; "
                             f"make the run's {part} section match the bundle's config.json")
    return out


def config_differs(part: str, raw: dict, section: Any, path: Path, may_differ: tuple[str, ...] = ()
                   ) -> tuple[str, Any, Any] | None:
    """The first key (with the bundle's and our value) in which a bundle's `part` config (raw dict, keys
    it predates take their defaults) differs from `section` in what the weights mean: training-only
    keys and `may_differ` may differ, and a tokenizer's decoder may be deeper than the bundle's (blocks
    are added)."""
    from genie.config import from_dict

    theirs = asdict(from_dict(type(section), raw, f"{path} [{part}]"))
    ours = asdict(section)
    for k in ours:
        deeper = part == "tokenizer" and k == "decoder_depth" and theirs[k] < ours[k]
        if k not in TRAINING_ONLY.get(part, ()) + may_differ and theirs[k] != ours[k] and not deeper:
            return k, theirs[k], ours[k]
    return None


def with_tokenizer(world: str, tokenizer: dict, weights: dict, source: Path) -> dict:
    """Put a tokenizer (its config and 'tokenizer.' weights) into world bundle `world`: -> the world's
    config, and `weights` filled in place with the world's LAM and dynamics. Refused (GenieError) unless
    the tokenizer gives exactly the world's tokens: the same config (config_differs) and the same
    encoder and codebook weights, as a decoder trained with train.decoder_only from it keeps them."""
    import torch

    from genie.bundle import component, read_bundle
    from genie.config import from_dict
    from genie.models.tokenizer import TokenizerConfig, VideoTokenizer

    path = Path(world)
    config, world_weights = read_bundle(path)
    if "dynamics" not in config.get("components", {}):
        raise GenieError(f"{path}: not a world bundle (it holds: {', '.join(config.get('components', {}))})")
    theirs, their_weights = component(config, world_weights, "tokenizer", path)
    ours = from_dict(TokenizerConfig, tokenizer, "tokenizer")
    first = config_differs("tokenizer", theirs, ours, path)
    differs = [first[0]] if first else []
    model = VideoTokenizer(ours)
    frozen = {id(p) for p in model.encoder_parameters()}
    names = [n for n, p in model.named_parameters() if id(p) in frozen]
    differs += [n for n in names if n not in their_weights or not torch.equal(their_weights[n], weights[f"tokenizer.{n}"])]
    if differs:
        raise GenieError(f"{source}: its tokenizer.{differs[0]} differs from {path}'s, so it would give that world "
                         f"other tokens; train the decoder alone, from the world: train.init={path} "
                         "train.decoder_only=true")
    weights.update({k: v for k, v in world_weights.items() if not k.startswith("tokenizer.")})
    config = {k: v for k, v in config.items() if k not in ("format", "format_version", "genie_version")}
    config["components"] = {**config["components"], "tokenizer": tokenizer}  # its decoder may be deeper
    config["training"] = dict(config.get("training", {}))
    return config


def _load_stage_tokenizer(stage: str, tokenizer: str | None, out: Path, resume: bool):
    """The world stage trains on a frozen tokenizer from a bundle (on resume: from the run)."""
    if stage != "world":
        return None
    from genie.bundle import load_tokenizer

    if resume:
        path = json.loads((out / "run.json").read_text()).get("tokenizer")
        tokenizer = tokenizer or path
    if not tokenizer:
        raise GenieError("genie train world needs --tokenizer BUNDLE (from `genie export` of a tokenizer run)")
    return load_tokenizer(tokenizer)


def _wandb_logger(out: Path, project: str, rank_zero: bool):
    """A WandbLogger that resumes the same wandb run id across restarts (offline by default).
    Rank 0 owns the id (and is the only rank that logs)."""
    from lightning.pytorch.loggers import WandbLogger

    os.environ.setdefault("WANDB_MODE", "offline")
    id_file = out / "wandb_id.txt"
    if rank_zero and not id_file.exists():
        import uuid

        write_text_atomic(id_file, uuid.uuid4().hex[:12])
    run_id = id_file.read_text().strip() if id_file.exists() else None
    logger = WandbLogger(project=project, save_dir=str(out), name=out.name, id=run_id, resume="allow")
    logger._wandb_init.pop("anonymous", None)  # Lightning always passes it; wandb >= 0.19 warns it does nothing
    return logger


def export_run(run: str, out: str, checkpoint: str | None = None, overrides: list[str] | None = None,
               force: bool = False, world: str | None = None) -> Path:
    """Turn run folder `run` (its last or a given checkpoint) into a safetensors bundle at `out`.
    overrides: `sample.key=value` strings setting the bundle's sampler defaults (a world run only),
    e.g. fewer MaskGIT steps for a world that must play at CPU frame rates. An existing `out` is
    refused unless `force`, and then only a genie bundle of the same form is replaced (save_bundle).
    world: a world bundle whose tokenizer this tokenizer run's replaces (a decoder trained further
    with train.decoder_only): `out` gets that world with the new decoder (see with_tokenizer)."""
    import dataclasses

    import torch

    from genie.bundle import check_bundle_out, save_bundle
    from genie.config import build_sections, parse_overrides
    from genie.world import SampleConfig

    run_dir = Path(run)
    meta_file = run_dir / "run.json"
    if not meta_file.is_file():
        raise GenieError(f"{run_dir}: not a training run (no run.json); pass the --out folder of `genie train`")
    meta = json.loads(meta_file.read_text())
    ckpt_path = Path(checkpoint) if checkpoint else run_dir / "checkpoints" / "last.ckpt"
    if not ckpt_path.is_file():
        raise GenieError(f"{ckpt_path}: checkpoint not found; train the run first (or pass --checkpoint)")
    check_bundle_out(out, force)  # before reading the checkpoint, not after
    make_out_dir(Path(out).parent, given=out)
    try:
        ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or foreign file
        raise GenieError(f"{ckpt_path}: not a readable checkpoint ({type(err).__name__}: {err})") from None
    module = _stages()[meta["stage"]].module(**ckpt["hyper_parameters"])
    module.load_state_dict(ckpt["state_dict"])
    components, weights = module.export()
    if world is not None:
        if meta["stage"] != "tokenizer" or overrides:
            raise GenieError(f"{run_dir}: --world takes a tokenizer run (with no sample.* settings), "
                             f"not a {meta['stage']} run")
        config = with_tokenizer(world, components["tokenizer"], weights, run_dir)
        config["training"]["decoder"] = {"step": ckpt.get("global_step"), "data": meta.get("data")}
        return save_bundle(out, config, weights, force=force)
    frame = components["tokenizer"]
    extras = module.bundle_extras()
    if overrides:
        if "sample" not in extras:
            raise GenieError(f"{run_dir}: sample.* settings apply to a world run, not a {meta['stage']} run")
        sample = build_sections({"sample": extras["sample"]}, {"sample": SampleConfig}, parse_overrides(overrides),
                                "genie export")["sample"]
        extras["sample"] = dataclasses.asdict(sample)
    config = {
        "components": components,
        **extras,
        "frame_shape": [frame["height"], frame["width"], 3],
        "training": {"stage": meta["stage"], "step": ckpt.get("global_step"), "data": meta.get("data")},
    }
    return save_bundle(out, config, weights, force=force)
