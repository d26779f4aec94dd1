"""Load sensor presets: YAML files mapping STAC collection id -> :class:`~jointssl.sensors.spec.Modality`.

A preset is named (``world``, ``planetary-computer``, ``earth-search``: files shipped in
``jointssl/sensors/presets/``) or given as a path to a YAML file of the same form::

    sentinel-2-l2a:          # STAC collection id
      name: s2
      dtype: uint16
      bands:
        - {name: B02, asset: B02, common_name: blue, native_gsd_m: 10, mean: 0.09, std: 0.05}
        ...
      allowed_hrefs: [https://account.blob.core.windows.net/container]   # where its hrefs may point

A preset may change another one: ``extends: NAME_OR_PATH`` (a relative path is read from the file's own
folder), then only what differs, key by key within each collection (a list such as ``bands`` is
replaced whole)::

    extends: world
    naip: {target_gsd_m: 1.0, chip_size: 320}   # NAIP read at 1 m, the same 320 m chip
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from jointssl.config.load import ConfigError, from_dict, read_yaml
from jointssl.sensors.hrefs import parse_prefix
from jointssl.sensors.signing import resolve
from jointssl.sensors.spec import Modality

PRESETS = ("world", "planetary-computer", "earth-search")


EXTENDS = "extends"
"""The key of a preset that names the preset it changes."""
NO_HREF_MODIFIER = "none"
"""``href_modifier`` value that switches a preset's URL signing off (mirrors, local copies)."""


def load_preset(name_or_path: str, href_modifier: str | None = None, allowed_hrefs: Sequence[str] | None = None,
                roots: Sequence[str] = ()) -> dict[str, Modality]:
    """All modalities of a preset, keyed by STAC collection id, in file order.

    ``href_modifier`` (``index.href_modifier`` in a job config) replaces every modality's own: null keeps
    the preset's, ``"none"`` reads hrefs as they are, a dotted path names another function (checked
    here, so a typo fails before any read). ``allowed_hrefs`` (``index.allowed_hrefs``) replaces every
    modality's own list of where its hrefs may point (null keeps the preset's); ``roots`` (the job's
    storage root and world) are added to every modality's list (:mod:`jointssl.sensors.hrefs`)."""
    modalities = _load(name_or_path)
    if href_modifier is not None:
        chosen = None if href_modifier.lower() == NO_HREF_MODIFIER else href_modifier
        resolve(chosen)
        modalities = {cid: dataclasses.replace(m, href_modifier=chosen) for cid, m in modalities.items()}
    if allowed_hrefs is None and not roots:
        return modalities
    for key, entries in (("index.allowed_hrefs", allowed_hrefs or ()), ("storage.root", roots)):
        for text in entries:
            try:
                parse_prefix(text)
            except ValueError as err:
                raise ConfigError(key, str(err)) from None
    return {cid: dataclasses.replace(m, allowed_hrefs=list(dict.fromkeys(
        [*(m.allowed_hrefs if allowed_hrefs is None else allowed_hrefs), *roots])))
        for cid, m in modalities.items()}


def _read(name_or_path: str, seen: tuple[str, ...] = ()) -> tuple[dict[str, Any], Path]:
    """The preset's mapping with what it ``extends`` merged under it, and its file."""
    path = _preset_path(name_or_path)
    raw = dict(read_yaml(path))
    base = raw.pop(EXTENDS, None)
    if base is None:
        return raw, path
    if not isinstance(base, str):
        raise ConfigError(EXTENDS, f"names the preset this one changes (one of {', '.join(PRESETS)} or a YAML "
                                   f"path), got {base!r}", str(path))
    if str(path.resolve()) in seen:
        raise ConfigError(EXTENDS, f"presets extend each other in a loop: {' -> '.join((*seen, str(path)))}",
                          str(path))
    target = base if base in PRESETS or Path(base).is_absolute() else str(path.parent / base)
    merged, _ = _read(target, (*seen, str(path.resolve())))
    for collection, spec in raw.items():
        below = merged.get(collection)
        merged[collection] = {**below, **spec} if isinstance(below, dict) and isinstance(spec, dict) else spec
    return merged, path


def _load(name_or_path: str) -> dict[str, Modality]:
    raw, path = _read(name_or_path)
    modalities: dict[str, Modality] = {}
    for collection, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(collection, "expected a mapping describing the modality", str(path))
        modality = from_dict(Modality, {"collection": collection, **spec}, source=str(path), prefix=collection)
        if modality.collection != collection:
            raise ConfigError(f"{collection}.collection", "must equal the key it is listed under", str(path))
        modalities[collection] = modality
    names = [m.name for m in modalities.values()]
    if len(set(names)) != len(names):
        raise ConfigError("name", f"modality names must be unique within a preset, got {names}", str(path))
    return modalities


def select(preset: dict[str, Modality], names: list[str]) -> list[Modality]:
    """The modalities called ``names`` (short names or collection ids), in the order asked."""
    by_name = {m.name: m for m in preset.values()} | preset
    unknown = [n for n in names if n not in by_name]
    if unknown:
        known = ", ".join(m.name for m in preset.values())
        raise ConfigError("modalities", f"unknown modality {unknown[0]!r}; this preset has: {known}")
    return [by_name[n] for n in names]


def _preset_path(name_or_path: str) -> Path:
    if name_or_path in PRESETS:
        return Path(str(resources.files("jointssl.sensors") / "presets" / f"{name_or_path}.yaml"))
    path = Path(name_or_path)
    if not path.is_file():
        raise ConfigError(
            "sensors.preset",
            f"{name_or_path!r} is neither a built-in preset ({', '.join(PRESETS)}) nor a YAML file",
        )
    return path
