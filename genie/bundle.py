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

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from genie.errors import GenieError
from genie.files import make_out_dir
from genie.version import __version__

FORMAT = "genie-bundle"
FORMAT_VERSION = 1
WEIGHTS = "model.safetensors"
CONFIG = "config.json"


def save_bundle(path: str | Path, config: dict[str, Any], weights: dict[str, torch.Tensor],
                force: bool = False) -> Path:
    """Write a bundle atomically: a folder (config.json + model.safetensors), or one file if
    `path` ends in .safetensors. `config` must hold "components"; format fields are added here.

    An existing `path` is refused (check_bundle_out) unless `force`, and even then only a genie
    bundle of the same form is replaced, once the new one is complete; other files in a bundle
    folder (a model card, prompts/) are kept."""
    path = Path(path)
    check_bundle_out(path, force)
    config = {"format": FORMAT, "format_version": FORMAT_VERSION, "genie_version": __version__, **config}
    weights = {k: v.detach().contiguous().cpu() for k, v in weights.items()}
    make_out_dir(path.parent, given=path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if path.suffix == ".safetensors":
            save_file(weights, tmp, metadata={"genie_config": json.dumps(config)})
            os.replace(tmp, path)
            return path
        tmp.mkdir()
        save_file(weights, tmp / WEIGHTS)
        (tmp / CONFIG).write_text(json.dumps(config, indent=2) + "\n")
        if path.exists():
            _swap_bundle_folder(tmp, path)
        else:
            os.replace(tmp, path)
    except OSError as err:
        raise GenieError(f"cannot write bundle {path} ({err.strerror or err}); pass a writable --out") from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp)
        elif tmp.exists():
            tmp.unlink()
    return path


def _swap_bundle_folder(new: Path, path: Path) -> None:
    """Put complete bundle folder `new` at `path` (an older bundle folder) in two renames, then
    move the old folder's other entries (all but config.json and model.safetensors) into it."""
    old = path.with_name(f".{path.name}.old-{os.getpid()}")
    os.replace(path, old)
    try:
        os.replace(new, path)
    except OSError:
        os.replace(old, path)  # the old bundle goes back where it was
        raise
    try:
        for entry in sorted(old.iterdir()):
            if entry.name not in (CONFIG, WEIGHTS):
                os.replace(entry, path / entry.name)
    except OSError as err:
        raise GenieError(f"wrote bundle {path}, but could not move the old folder's other files back into it "
                         f"({err.strerror}); they are in {old}") from None
    shutil.rmtree(old)


def bundle_form(path: str | Path) -> str | None:
    """"folder" or "file" if `path` is a genie bundle of that form (any format version), else None.
    Reads only the config, never the weights."""
    path = Path(path)
    if path.is_dir():
        try:
            config = json.loads((path / CONFIG).read_text())
        except (OSError, ValueError):
            return None
        return "folder" if isinstance(config, dict) and config.get("format") == FORMAT else None
    if path.is_file():
        try:
            with safe_open(path, framework="pt") as f:
                return "file" if "genie_config" in (f.metadata() or {}) else None
        except (SafetensorError, OSError, ValueError):
            return None
    return None


def check_bundle_out(path: str | Path, force: bool = False) -> None:
    """GenieError unless a bundle may be written at `path`: nothing is there, or `force` and a
    genie bundle of the same form (a folder, or one .safetensors file) is. Nothing else is ever
    replaced: not a file where a folder goes, not a folder of other things."""
    path = Path(path)
    if not (path.exists() or path.is_symlink()):
        return
    want = "file" if path.suffix == ".safetensors" else "folder"
    found = bundle_form(path)
    if found is None:
        what = "a folder" if path.is_dir() else "a file"
        raise GenieError(f"--out {path} exists and is {what}, not a genie bundle; choose another --out "
                         f"(--force replaces only a genie bundle)")
    if found != want:
        there = "a one-file genie bundle" if found == "file" else "a genie bundle folder"
        made = "one .safetensors file" if want == "file" else "a folder"
        raise GenieError(f"--out {path} is {there} but this --out writes {made}; "
                         f"choose another --out (--force replaces only a bundle of the same form)")
    if not force:
        raise GenieError(f"--out {path} already holds a genie bundle; pass --force to replace it, "
                         f"or choose another --out")


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
    from genie.models.tokenizer import TokenizerConfig, VideoTokenizer

    config, weights = read_bundle(path)
    cfg, state = component(config, weights, "tokenizer", Path(path))
    model = VideoTokenizer(from_dict(TokenizerConfig, cfg, f"{path} [tokenizer]"))
    model.load_state_dict(state)
    return model.to(device).eval()


PROMPT_EXTS = (".png", ".jpg", ".jpeg")


def bundle_prompts(bundle: str | Path) -> list[np.ndarray]:
    """The images a folder bundle ships in prompts/ (*.png, *.jpg), sorted by name; [] if none."""
    from data_pipeline.ingest import read_prompt

    folder = Path(bundle) / "prompts"
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in PROMPT_EXTS) if folder.is_dir() else []
    return [read_prompt(p) for p in files]
