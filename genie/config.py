"""YAML configs whose keys are the config dataclasses' fields, plus command-line overrides.

A stage config has one section per dataclass, e.g. `model:` (TokenizerConfig) and `train:`
(TrainConfig). Overrides are `section.key=value` (or `--section.key value`); values parse as
YAML scalars. Unknown sections or keys are errors that name the file and list the known keys.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Any

import yaml

from genie.errors import GenieError


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GenieError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise GenieError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise GenieError(f"{path}: expected a mapping of sections (model:, train:), got {type(data).__name__}")
    return data


def parse_overrides(args: list[str]) -> list[tuple[str, Any]]:
    """['model.dim=64', '--train.lr', '1e-3', '--train.max_steps=5'] -> [(key, value), ...]."""
    pairs, i = [], 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            arg = arg[2:]
            if "=" not in arg:
                if i + 1 >= len(args):
                    raise GenieError(f"override --{arg} needs a value")
                arg, i = f"{arg}={args[i + 1]}", i + 1
        if "=" not in arg or "." not in arg.split("=", 1)[0]:
            raise GenieError(f"cannot read argument {args[i]!r}: overrides look like section.key=value")
        key, raw = arg.split("=", 1)
        pairs.append((key, yaml.safe_load(raw) if raw else ""))
        i += 1
    return pairs


def build_sections(
    raw: dict[str, Any], schema: dict[str, type], overrides: list[tuple[str, Any]], source: str
) -> dict[str, Any]:
    """Merge `raw` YAML and overrides into one dataclass instance per section of `schema`."""
    for section, values in raw.items():
        if section not in schema:
            raise GenieError(f"{source}: unknown section '{section}' (known: {', '.join(schema)})")
        if not isinstance(values, dict):
            raise GenieError(f"{source}: section '{section}' must be a mapping of keys")
    merged = {s: dict(raw.get(s) or {}) for s in schema}
    for key, value in overrides:
        section, name = key.split(".", 1)
        if section not in schema:
            raise GenieError(f"override {key}: unknown section '{section}' (known: {', '.join(schema)})")
        merged[section][name] = value
    return {s: from_dict(schema[s], merged[s], f"{source} [{s}]") for s in schema}


def from_dict(cls: type, values: dict[str, Any], source: str):
    """Build dataclass `cls` from `values`, refusing unknown keys, mistyped values and values its
    constructor rejects (a ValueError, e.g. out of range), each as a GenieError naming `source`."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise GenieError(f"{source}: unknown key '{unknown[0]}' (known: {', '.join(fields)})")
    kwargs = {}
    for name, value in values.items():
        default = getattr(cls(), name) if _has_defaults(cls) else None
        kwargs[name] = _coerce(value, default, f"{source}: key '{name}'")
    try:
        return cls(**kwargs)
    except ValueError as err:  # a value outside its range, e.g. TrainConfig.__post_init__
        raise GenieError(f"{source}: {err}") from None


def _has_defaults(cls: type) -> bool:
    return all(
        f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
        for f in dataclasses.fields(cls)
    )


def _coerce(value: Any, default: Any, where: str) -> Any:
    if default is None or value is None:
        return value
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise GenieError(f"{where} expects true/false, got {value!r}")
        return value
    if isinstance(default, (int, float)) and not isinstance(value, bool):
        if isinstance(value, str) and isinstance(default, float):
            with contextlib.suppress(ValueError):  # YAML 1.1 reads 1e-3 (no dot) as a string
                value = float(value)
        if isinstance(value, (int, float)):
            if isinstance(default, int) and isinstance(value, float) and not value.is_integer():
                raise GenieError(f"{where} expects an integer, got {value!r}")
            return type(default)(value)
        raise GenieError(f"{where} expects a number, got {value!r}")
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            raise GenieError(f"{where} expects a list, got {value!r}")
        return type(default)(value)
    if isinstance(default, str) and not isinstance(value, str):
        return str(value)
    return value


def to_dict(obj) -> dict[str, Any]:
    return dataclasses.asdict(obj)
