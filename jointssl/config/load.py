"""Turn YAML files and ``--section.key value`` flags into validated, typed dataclass configs.

The schema is the dataclass itself: field types say what is accepted, ``field(metadata=...)``
adds the rules a type cannot (``choices``, ``min``, ``max``, ``url``), and ``__post_init__``
checks what spans several fields. Everything is checked once, here, at the edge, and every
failure is one :class:`ConfigError` naming the key, the file and what would have been accepted.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import types
import typing
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar, Union, get_args, get_origin

import yaml

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or impossible."""

    def __init__(self, key: str, problem: str, source: str | None = None):
        self.key = key
        self.problem = problem
        self.source = source
        where = f" (in {source})" if source else ""
        super().__init__(f"config key '{key}'{where}: {problem}")


def load_config(
    schema: type[T],
    path: str | Path | None = None,
    overrides: list[str] | None = None,
) -> T:
    """Load ``path`` (YAML) as an instance of ``schema``, then apply ``--a.b value`` overrides.

    ``overrides`` is a flat list as typed on the command line: ``["--train.lr", "3e-4"]`` or
    ``["--train.lr=3e-4"]``. Values are parsed as YAML scalars, so ``true``, ``3``, ``[1, 2]``
    mean what they look like.
    """
    raw: dict[str, Any] = {}
    source = "<defaults>"
    if path is not None:
        source = str(path)
        raw = read_yaml(Path(path))
    for key, value in parse_overrides(overrides or []):
        set_dotted(raw, key, value)
    if overrides:
        source = f"{source} + command-line overrides"
    return from_dict(schema, raw, source=source)


def read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError("<file>", f"config file {path} does not exist", str(path))
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError("<file>", f"not UTF-8 text (byte {err.start}): is this a YAML file?", str(path)) from None
    data = parse_yaml(text, "<file>", str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("<file>", f"expected a mapping at the top level, got {type(data).__name__}", str(path))
    return data


def parse_yaml(text: str, key: str, source: str) -> Any:
    """``text`` as YAML (safe loader), or one ConfigError for anything PyYAML cannot read (including
    nesting too deep for it)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ConfigError(key, f"not valid YAML: {err}", source) from None
    except RecursionError:
        raise ConfigError(key, "not valid YAML: nested too deeply", source) from None


def parse_overrides(args: list[str]) -> list[tuple[str, Any]]:
    """``["--a.b", "1", "--c=x"]`` -> ``[("a.b", 1), ("c", "x")]``."""
    pairs: list[tuple[str, Any]] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) <= 2:
            raise ConfigError(arg, "overrides look like --section.key VALUE or --section.key=VALUE", "command line")
        if "=" in arg:
            key, text = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ConfigError(arg[2:], "override has no value", "command line")
            key, text = arg[2:], args[i + 1]
            i += 2
        try:
            value = parse_yaml(text, key, "command line") if text != "" else ""
        except ConfigError:  # not YAML: the text itself (a string key will take it, others say what they want)
            value = text
        pairs.append((key.replace("-", "_"), value))
    return pairs


def set_dotted(tree: dict[str, Any], dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(dotted, f"'{part}' is a value, not a section", "command line")
        node = child
    node[parts[-1]] = value


def from_dict(schema: type[T], data: Any, source: str | None = None, prefix: str = "") -> T:
    """Build ``schema`` from plain data, checking every key and value."""
    if not isinstance(data, dict):
        raise ConfigError(prefix or "<root>", f"expected a mapping, got {_describe(data)}", source)
    hints = typing.get_type_hints(schema)
    fields = {f.name: f for f in dataclasses.fields(schema) if f.init}
    unknown = sorted(str(k) for k in set(data) - set(fields))  # keys may be any YAML scalar
    if unknown:
        key = _join(prefix, unknown[0])
        raise ConfigError(key, f"unknown key; accepted keys here: {', '.join(sorted(fields))}", source)
    kwargs: dict[str, Any] = {}
    for name, fld in fields.items():
        key = _join(prefix, name)
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], key, source)
            _check_rules(fld.metadata, kwargs[name], key, source)
        elif fld.default is dataclasses.MISSING and fld.default_factory is dataclasses.MISSING:
            raise ConfigError(key, "is required but missing", source)
    try:
        return schema(**kwargs)
    except ConfigError as err:
        if err.source is None:
            raise ConfigError(_join(prefix, err.key), err.problem, source) from None
        raise


def to_dict(config: Any) -> Any:
    """The plain-data form of a config (for logging as MLflow params and writing back as YAML)."""
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, (list, tuple)):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {k: to_dict(v) for k, v in config.items()}
    return config


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, for logging: string values pass through
    :func:`jointssl.redact.redact` (URL passwords, signed-URL parameters, secret environment values)."""
    if not isinstance(tree, dict):
        from jointssl.redact import redact

        return {prefix: redact(tree) if isinstance(tree, str) else tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flatten(value, _join(prefix, str(key))))
    return out


def _coerce(tp: Any, value: Any, key: str, source: str | None) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, key, source)
            except ConfigError as err:
                errors.append(err.problem)
        raise ConfigError(key, " or ".join(errors), source)
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed:
            raise ConfigError(key, f"{value!r} is not one of: {', '.join(map(repr, allowed))}", source)
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return from_dict(tp, value, source, key)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"expected a list, got {_describe(value)}", source)
        args = get_args(tp)
        item_type = args[0] if args else Any
        items = [_coerce(item_type, v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(key, f"expected a mapping, got {_describe(value)}", source)
        _, value_type = get_args(tp) or (str, Any)
        return {str(k): _coerce(value_type, v, f"{key}.{k}", source) for k, v in value.items()}
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected true or false, got {_describe(value)}", source)
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(key, f"expected an integer, got {_describe(value)}", source)
    if tp is float:
        number = _float(value)
        if number is None:
            raise ConfigError(key, f"expected a number, got {_describe(value)}", source)
        if not math.isfinite(number):
            raise ConfigError(key, f"expected a finite number, got {_describe(value)}", source)
        return number
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (datetime.date, datetime.datetime)):  # YAML reads 2023-01-01 as a date
            return value.isoformat()
        raise ConfigError(key, f"expected a string, got {_describe(value)}", source)
    raise TypeError(f"config schema type {tp!r} at '{key}' is not supported")


def _float(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an integer beyond any float
            return math.inf
    if isinstance(value, str):  # YAML reads "3e-4" (no dot) as a string
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _check_rules(rules: Any, value: Any, key: str, source: str | None) -> None:
    if value is None:
        return
    if "choices" in rules and value not in rules["choices"]:
        raise ConfigError(key, f"{value!r} is not one of: {', '.join(map(repr, rules['choices']))}", source)
    if "min" in rules and value < rules["min"]:
        raise ConfigError(key, f"{value!r} is below the minimum {rules['min']!r}", source)
    if "max" in rules and value > rules["max"]:
        raise ConfigError(key, f"{value!r} is above the maximum {rules['max']!r}", source)
    if rules.get("url"):
        from jointssl.storage import validate_url

        try:
            problem = validate_url(value)
        except ValueError as err:  # urlparse: e.g. an unclosed IPv6 bracket
            problem = f"{value!r} is not a URL: {err}"
        if problem:
            raise ConfigError(key, problem, source)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def _describe(value: Any) -> str:
    return f"{type(value).__name__} {value!r}"
