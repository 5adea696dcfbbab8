"""`+key=value` on the command line: Hydra adds any key with `+`, even one no schema has, so a typo
(`+length_policy.kmax=2`) would run the defaults silently. Refuse an addition the schema does not know,
as Hydra refuses `key=value` for an unknown key; group additions (`+experiment=NAME`) stay allowed."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

CONF = Path(__file__).resolve().parent.parent / "conf"


def _unwrap(tp: Any) -> Any:
    """Optional[X] → X."""
    if typing.get_origin(tp) is typing.Union:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0] if len(args) == 1 else Any
    return tp


def schema_has(schema: type, key: str) -> bool:
    """Whether a dotted key exists in a dataclass schema; below an Any/dict/list field anything goes."""
    node: Any = schema
    for part in key.split("."):
        node = _unwrap(node)
        if not (isinstance(node, type) and dataclasses.is_dataclass(node)):
            return True  # Any, dict[str, Any], list: free-form below this point
        hints = typing.get_type_hints(node)
        if part not in hints:
            return False
        node = hints[part]
    return True


def unknown_additions(overrides: list[str], schema: type, conf: Path = CONF) -> list[str]:
    """The `+key=value` / `++key=value` overrides whose key is neither in `schema` nor a config group."""
    bad = []
    for override in overrides:
        if not override.startswith("+") or "=" not in override:
            continue
        key = override.lstrip("+").split("=", 1)[0].strip()
        if "/" in key or "@" in key or key.split(".", 1)[0] == "hydra":
            continue  # a group path, a package-qualified group, or Hydra's own settings
        if "." not in key and (conf / key).is_dir():
            continue  # `+experiment=NAME`: a config group choice
        if not schema_has(schema, key):
            bad.append(override)
    return bad


def check_additions(overrides: list[str], schema: type, entry: str) -> None:
    """ValueError naming each unknown `+key` (the entry points turn it into exit code 2)."""
    bad = unknown_additions(overrides, schema)
    if bad:
        keys = ", ".join(repr(o.lstrip("+").split("=", 1)[0]) for o in bad)
        raise ValueError(
            f"{' '.join(bad)}: unknown key {keys} in {entry}'s config; `+` adds a key only where the schema has "
            "one (check the spelling, or drop the `+` to override an existing key)"
        )


def refuse_unknown_additions(schema: type, entry: str) -> None:
    """Call inside a @hydra.main function: checks the command line's overrides."""
    from hydra.core.hydra_config import HydraConfig

    check_additions(list(HydraConfig.get().overrides.task), schema, entry)
