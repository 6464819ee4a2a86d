"""Read params.yaml and turn the active data profile into validated source definitions."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from sneakers.errors import SneakersError

LABELS = ("real", "ai")
BRAND_RULES = ("folder", "prefix")
ROLES = ("train", "eval")  # eval: scored by evaluate only, never split, trained on or tuned on
KAGGLE_HANDLE = re.compile(r"^[\w.-]+/[\w.-]+/versions/\d+$")
T = TypeVar("T")
SECTIONS = {"seed", "data", "merge", "standardize", "split", "audit", "simulate", "model", "train",
            "augment"}  # fmt: skip
SOURCE_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class Source:
    """One entry of a data profile: where its files come from and how they are labelled."""

    name: str
    kind: str  # "kaggle" | "path" | "demo"
    kaggle: str = ""
    path: str = ""
    demo: dict[str, Any] = field(default_factory=dict)
    label: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    brand: str = ""
    role: str = "train"


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    """Load params.yaml; a missing or malformed file is a user error, not a traceback."""
    try:
        params = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise SneakersError(f"{path} not found: run from the project root") from None
    except yaml.YAMLError as err:
        raise SneakersError(f"{path} is not valid YAML: {err}".replace("\n", " ")) from None
    if not isinstance(params, dict):
        raise SneakersError(f"{path} must be a mapping of sections")
    unknown = sorted(set(params) - SECTIONS)
    if unknown:
        known = ", ".join(sorted(SECTIONS))
        raise SneakersError(f"{path} has unknown section(s) {', '.join(unknown)}; known: {known}")
    if not isinstance(params.get("seed"), int) or isinstance(params.get("seed"), bool):
        raise SneakersError(f"{path} needs a top-level integer seed, e.g. `seed: 42`")
    return params


def section(params: dict[str, Any], name: str) -> dict[str, Any]:
    """Return a params section, failing with the key to add when it is absent."""
    value = params.get(name)
    if not isinstance(value, dict):
        raise SneakersError(f"params.yaml has no '{name}' section: add it (see README)")
    return value


def settings_from(
    cls: type[T],
    values: dict[str, Any],
    name: str,
    choices: dict[str, Any] | None = None,
    minimum: dict[str, float] | None = None,
) -> T:
    """Build a settings dataclass from a params section; every message names the key and fix."""
    hints = get_type_hints(cls)
    unknown = sorted(set(values) - set(hints))
    if unknown:
        raise SneakersError(
            f"{name} has unknown key(s) {', '.join(unknown)}; known: {', '.join(hints)}"
        )
    for key, value in values.items():
        if not _fits(value, hints[key]):
            wanted = " or ".join(t.__name__ for t in _options(hints[key]))
            raise SneakersError(f"{name}.{key} must be {wanted}, not {value!r}")
    for key, allowed in (choices or {}).items():
        if key in values and values[key] not in allowed:
            raise SneakersError(f"{name}.{key} is {values[key]!r}; use one of {', '.join(allowed)}")
    for key, low in (minimum or {}).items():
        if key in values and values[key] < low:
            raise SneakersError(f"{name}.{key} is {values[key]}; it must be at least {low}")
    return cls(**values)


def _options(expected: Any) -> tuple[type, ...]:
    """The plain types a field accepts, for messages."""
    if get_origin(expected) in (Union, UnionType):
        return tuple(t for option in get_args(expected) for t in _options(option))
    return (get_origin(expected) or expected,)


def _fits(value: Any, expected: Any) -> bool:
    """Whether a YAML value has the type a settings field declares (ints pass for floats)."""
    origin = get_origin(expected)
    if origin in (Union, UnionType):
        return any(_fits(value, option) for option in get_args(expected))
    if origin is not None:  # dict[...] or list[...]: the container type is enough here
        return isinstance(value, origin)
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


def active_sources(params: dict[str, Any]) -> list[Source]:
    """The sources of `data.profile`, validated so that later stages can trust them."""
    data = section(params, "data")
    profile = data.get("profile")
    profiles = data.get("profiles") or {}
    if profile not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise SneakersError(f"data.profile {profile!r} is not in data.profiles (known: {known})")
    entries = profiles[profile]
    if not isinstance(entries, list) or not entries:
        raise SneakersError(f"data.profiles.{profile} is empty: list at least one source")
    sources = [
        parse_source(entry, f"data.profiles.{profile}[{i}]") for i, entry in enumerate(entries)
    ]
    names = [s.name for s in sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SneakersError(f"data.profiles.{profile}: duplicate source name(s) {', '.join(dupes)}")
    if all(s.role == "eval" for s in sources):
        raise SneakersError(
            f"data.profiles.{profile} has only role: eval sources: add one to train on"
        )
    return sources


def parse_source(entry: Any, where: str) -> Source:
    """Validate one source entry; every message names the key and the fix."""
    if not isinstance(entry, dict):
        raise SneakersError(f"{where} must be a mapping with name, a location and a label")
    name = entry.get("name")
    if not isinstance(name, str) or not SOURCE_NAME.match(name):
        raise SneakersError(f"{where}.name must be a folder-safe name like 'demo-photos'")
    kinds = [k for k in ("kaggle", "path", "demo") if k in entry]
    if len(kinds) != 1:
        raise SneakersError(f"{where} ({name}) needs exactly one of kaggle:, path: or demo:")
    kind = kinds[0]
    unknown = set(entry) - {"name", "kaggle", "path", "demo", "label", "labels", "brand", "role"}
    if unknown:
        raise SneakersError(f"{where} ({name}) has unknown key(s) {', '.join(sorted(unknown))}")
    label, labels = entry.get("label", ""), entry.get("labels") or {}
    if bool(label) == bool(labels):
        raise SneakersError(
            f"{where} ({name}) needs either label: real|ai or labels: {{folder: ...}}"
        )
    bad = [v for v in ([label] if label else list(labels.values())) if v not in LABELS]
    if bad:
        raise SneakersError(f"{where} ({name}) has label {bad[0]!r}; use real or ai")
    brand = entry.get("brand", "") or ""
    if brand and brand not in BRAND_RULES:
        raise SneakersError(f"{where} ({name}).brand must be folder or prefix, not {brand!r}")
    role = entry.get("role", "train")
    if role not in ROLES:
        raise SneakersError(f"{where} ({name}).role must be train or eval, not {role!r}")
    source = Source(name=name, kind=kind, label=label, labels=dict(labels), brand=brand, role=role)
    if kind == "kaggle":
        handle = entry["kaggle"]
        if not isinstance(handle, str) or not KAGGLE_HANDLE.match(handle):
            raise SneakersError(
                f"{where} ({name}).kaggle must be owner/dataset/versions/N, pinned, not {handle!r}"
            )
        return replace(source, kaggle=handle)
    if kind == "path":
        if not isinstance(entry["path"], str) or not entry["path"]:
            raise SneakersError(f"{where} ({name}).path must be a folder or .zip path")
        return replace(source, path=entry["path"])
    if not isinstance(entry["demo"], dict) or "kind" not in entry["demo"]:
        raise SneakersError(f"{where} ({name}).demo must be a mapping with a kind")
    return replace(source, demo=dict(entry["demo"]))
