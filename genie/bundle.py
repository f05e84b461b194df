"""World bundles: config.json + model.safetensors (a folder), or one .safetensors file.

A bundle holds one or more components (tokenizer, later lam and dynamics), each a config dict
under config["components"][name] and weights under "<name>." in the safetensors file. Loading
never unpickles. A bundle written by another format version is refused with a message saying so.
In the one-file form the JSON config is stored in the safetensors metadata under "genie_config".
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from genie import __version__
from genie.errors import GenieError

FORMAT = "genie-bundle"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_bundle(path: str | Path, config: dict[str, Any], weights: dict[str, torch.Tensor]) -> Path:
    """Write a bundle atomically: a folder (config.json + model.safetensors), or one file if
    `path` ends in .safetensors. An existing bundle at `path` is replaced only once the new one
    is complete. `config` must hold "components"; format fields are added here."""
    path = Path(path)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "genie_version": __version__, **config}
    weights = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if path.suffix == ".safetensors":
            save_file(weights, tmp, metadata={"genie_config": json.dumps(config)})
            os.replace(tmp, path)
            return path
        tmp.mkdir(parents=True, exist_ok=False)
        save_file(weights, tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()
    return path


def read_bundle(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Read a bundle -> (config, weights on CPU). Raises GenieError naming what is wrong."""
    path = Path(path)
    if not path.exists():
        raise GenieError(f"{path}: no such bundle (make one with `genie export RUN --out {path}`)")
    if path.is_dir():
        cfg_file, weights_file = path / CONFIG, path / WEIGHTS
        if not cfg_file.is_file() or not weights_file.is_file():
            raise GenieError(f"{path}: not a genie bundle (expected {CONFIG} and {WEIGHTS} inside)")
        try:
            config = json.loads(cfg_file.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise GenieError(f"{cfg_file}: not valid JSON ({err})") from None
    else:
        weights_file = path
        try:
            with safe_open(path, framework="pt") as f:
                meta = f.metadata() or {}
        except (SafetensorError, OSError, ValueError) as err:
            raise GenieError(f"{path}: not a readable safetensors bundle ({err})") from None
        if "genie_config" not in meta:
            raise GenieError(f"{path}: a safetensors file without a genie config; not a genie bundle")
        config = json.loads(meta["genie_config"])
    check_format(config, path)
    try:
        weights = load_file(weights_file)
    except (SafetensorError, OSError, ValueError) as err:
        raise GenieError(f"{weights_file}: weights are unreadable or truncated ({err})") from None
    return config, weights


def check_format(config: dict[str, Any], path: Path) -> None:
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise GenieError(f"{path}: not a genie bundle (config has no format '{FORMAT}')")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        hint = "upgrade genie to load it" if isinstance(version, int) and version > FORMAT_VERSION else (
            "re-export it from its training run with this genie (`genie export RUN --out BUNDLE`)"
        )
        raise GenieError(
            f"{path}: bundle format version {version} (written by genie {config.get('genie_version', '?')}), "
            f"but this genie {__version__} reads version {FORMAT_VERSION}; {hint}"
        )


def component(config: dict[str, Any], weights: dict[str, torch.Tensor], name: str, path: Path):
    """-> (component config dict, its weights with the '<name>.' prefix removed)."""
    components = config.get("components", {})
    if name not in components:
        raise GenieError(f"{path}: bundle has no {name} (it holds: {', '.join(components) or 'nothing'})")
    prefix = f"{name}."
    return components[name], {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def load_tokenizer(path: str | Path, device: str | torch.device = "cpu"):
    """Load the VideoTokenizer of a bundle, in eval mode on `device`."""
    from genie.config import from_dict
    from genie.tokenizer import TokenizerConfig, VideoTokenizer

    config, weights = read_bundle(path)
    cfg, state = component(config, weights, "tokenizer", Path(path))
    model = VideoTokenizer(from_dict(TokenizerConfig, cfg, f"{path} [tokenizer]"))
    model.load_state_dict(state)
    return model.to(device).eval()
