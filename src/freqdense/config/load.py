"""Load an experiment config: YAML -> one ``base:`` include -> dotted overrides -> strict dataclasses."""

from __future__ import annotations

import dataclasses
import difflib
import re
import types
import typing
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .schema import ExperimentConfig, ModelConfig
from .validate import validate_config

__all__ = [
    "load_config",
    "merge_dicts",
    "config_to_dict",
    "list_shipped_configs",
    "resolve_config_path",
    "parse_overrides",
    "ConfigLoader",
    "yaml_load",
]

_SHIPPED_PACKAGE = "freqdense.configs"


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads YAML 1.2 floats: ``1e-3``, ``1E5``, ``-2e-4``, ``-.5``, ``+1.0e3``.

    PyYAML follows YAML 1.1, where a float needs a dot and a signed exponent, so ``lr: 1e-3`` would be the string
    ``'1e-3'``. Plain scalars that are not exactly such a number (``1e-3abc``, ``e5``, ``1.2.3``) stay strings and
    integers stay integers (the int resolver runs first; this pattern needs a dot or an exponent).
    """


_YAML12_FLOAT = re.compile(r"""^[-+]?(?:(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[0-9]+[eE][-+]?[0-9]+)$""")
ConfigLoader.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))


def yaml_load(text: str) -> Any:
    """Parse YAML text with :class:`ConfigLoader` (safe: plain data only)."""
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 (ConfigLoader is a SafeLoader)


def list_shipped_configs() -> list[str]:
    """Names of the configs shipped in the package, e.g. ``synthetic/multitask_baseline_r18``."""
    root = resources.files(_SHIPPED_PACKAGE)
    names = []
    for path in Path(str(root)).rglob("*.yaml"):
        names.append(path.relative_to(Path(str(root))).with_suffix("").as_posix())
    return sorted(names)


def resolve_config_path(name: str | Path, *, relative_to: Path | None = None) -> Path:
    """A file path, a path relative to ``relative_to``, or the name of a shipped config."""
    candidates = [Path(name)]
    if relative_to is not None:
        candidates.insert(0, relative_to / name)
    shipped_root = Path(str(resources.files(_SHIPPED_PACKAGE)))
    stem = str(name)[:-5] if str(name).endswith(".yaml") else str(name)
    candidates.append(shipped_root / f"{stem}.yaml")
    for path in candidates:
        if path.is_file():
            return path
    close = difflib.get_close_matches(stem, list_shipped_configs(), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ConfigError(f"config {str(name)!r} is neither a file nor a shipped config.{hint} See `freqdense list`.")


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def merge_dicts(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Maps merge recursively; lists and scalars replace."""
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_dicts(out[key], value)
        else:
            out[key] = value
    return out


def parse_overrides(overrides: list[str]) -> dict[str, Any]:
    """``["optim.lr=0.01", "model.backbone=resnet34"]`` -> nested dict (values parsed as YAML scalars)."""
    nested: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like section.key=value (e.g. optim.lr=0.01)")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r}: empty key component")
        try:
            value = yaml_load(raw) if raw.strip() else ""
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: cannot parse value: {err}") from err
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r} conflicts with another override of {part!r}")
        node[parts[-1]] = value
    return nested


def load_raw_config(path: str | Path, overrides: list[str] | None = None) -> dict[str, Any]:
    """Read YAML, apply the single ``base:`` include and the overrides; no validation yet.

    Mappings merge recursively and everything else replaces, except the ``model`` section when the child names a
    different model: then the child's section replaces the base's (the keyword arguments belong to the factory).
    """
    path = resolve_config_path(path)
    data = _read_yaml(path)
    base_name = data.pop("base", None)
    if base_name is not None:
        base_path = resolve_config_path(base_name, relative_to=path.parent)
        base = _read_yaml(base_path)
        if "base" in base:
            raise ConfigError(f"{base_path}: a base config cannot have its own 'base:' (at most one include level)")
        child_model, base_model = data.get("model"), base.get("model")
        if isinstance(child_model, dict) and isinstance(base_model, dict):
            if child_model.get("name", base_model.get("name")) != base_model.get("name"):
                # Another model: its keyword arguments differ, so the section replaces instead of merging.
                base = {k: v for k, v in base.items() if k != "model"}
        data = merge_dicts(base, data)
    if overrides:
        data = merge_dicts(data, parse_overrides(overrides))
    return data


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check/convert ``value`` against the annotation ``tp``; raise ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: {value!r} matches none of {_type_name(tp)}")
    if origin is typing.Literal:
        if value not in args:
            close = difflib.get_close_matches(str(value), [str(a) for a in args], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(repr(a) for a in args)}.{hint}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{where}: expected {len(args)} values, got {len(value)}: {value!r}")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)] if args else list(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        vt = args[1] if args else Any
        return {str(k): _convert(v, vt, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number (e.g. 0.001 or 1e-3), got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {tp!r} at {where}")


def _build_dataclass(cls: type, value: Any, where: str) -> Any:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping of keys, got {value!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    if cls is ModelConfig:
        if "name" not in value:
            raise ConfigError(f"{where}: missing 'name' (the registered model, see `freqdense list`)")
        value = {"name": value["name"], "kwargs": {k: v for k, v in value.items() if k != "name"}}
    kwargs = {}
    for key, item in value.items():
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=3)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
            raise ConfigError(f"{where}: unknown key {key!r}.{hint} Valid keys: {', '.join(fields)}.")
        kwargs[key] = _convert(item, hints[key], f"{where}.{key}")
    missing = [
        n
        for n, f in fields.items()
        if n not in kwargs and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {', '.join(missing)}")
    return cls(**kwargs)


def build_config(data: dict[str, Any], *, source: str = "config", check_model: bool = True) -> ExperimentConfig:
    """Validate a raw dict into an :class:`ExperimentConfig`: types, value ranges and ``eval.metric``
    (:func:`~freqdense.config.validate.validate_config`), and the model kwargs against the factory."""
    cfg = _build_dataclass(ExperimentConfig, data, source)
    validate_config(cfg, source)
    if check_model:
        from .._registry import check_kwargs
        from ..models import MODELS

        factory = MODELS.get(cfg.model.name)
        try:
            check_kwargs(factory, cfg.model.kwargs, what=f"model {cfg.model.name!r}")
        except ConfigError as err:
            raise ConfigError(f"{source}.model: {err}") from None
    return cfg


def load_config(path: str | Path, overrides: list[str] | None = None, *, check_model: bool = True) -> ExperimentConfig:
    """Load, merge and strictly validate an experiment config.

    Args:
        path: a YAML file or the name of a shipped config (``freqdense list``).
        overrides: dotted ``section.key=value`` strings applied last.
        check_model: check the model keyword arguments against the registered factory's signature.
    """
    data = load_raw_config(path, overrides)
    return build_config(data, source=str(path), check_model=check_model)


def config_to_dict(cfg: ExperimentConfig) -> dict[str, Any]:
    """Plain-data form (YAML/JSON-serialisable); the model section is flattened back to ``name`` + kwargs."""

    def plain(obj: Any) -> Any:
        if dataclasses.is_dataclass(obj):
            return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if isinstance(obj, (list, tuple)):
            return [plain(v) for v in obj]
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        return obj

    out = plain(cfg)
    out["model"] = {"name": cfg.model.name, **plain(cfg.model.kwargs)}
    return out
