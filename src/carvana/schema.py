"""The config schema (workflow/schemas/config.schema.yaml): the one source of every config key's
default. The config check fills a config in from it, a stage's flag left out takes its value, and
the library's specs take their fields' defaults from it (``n_folds: int = default("folds.n_folds")``),
so that a spec built with its defaults does what the workflow's default config does, and no
second copy of a default can drift from the first.

A key is a dotted path as config.yaml nests it (``tune.thresholds.start``); ``*`` stands for any
name in a mapping whose entries share one schema, as the models' do (``models.*.augment.hflip_p``).
The schema is read once per process, from the checkout the package is installed from
(``pip install -e``).
"""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "workflow/schemas/config.schema.yaml"


@cache
def load(path: Path = SCHEMA_PATH) -> dict[str, Any]:
    """The schema as parsed, shared by every caller: read it, never change it."""
    import yaml

    if not path.is_file():
        raise FileNotFoundError(
            f"the config schema {path} is missing (it holds every config key's default): run from "
            "a checkout of the pipeline, installed with pip install -e"
        )
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's: a tenth of the time
    schema: dict[str, Any] = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    return schema


def default(key: str) -> Any:
    """The schema's default of config key ``key``, a copy of its own (a list or mapping may be
    changed). KeyError for a key the schema lacks or gives no default."""
    node = _node(key)
    if "default" not in node:
        raise KeyError(f"the config schema gives {key!r} no default")
    return copy.deepcopy(node["default"])


def _node(key: str) -> dict[str, Any]:
    """The schema of config key ``key``, with ``$ref`` followed."""
    schema = load()
    node = schema
    for part in key.split("."):
        child = node.get("additionalProperties") if part == "*" else node.get("properties", {}).get(part)
        if not isinstance(child, dict):
            raise KeyError(f"the config schema has no key {key!r}")
        node = _resolved(schema, child)
    return node


def _resolved(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """``node``, or the part of ``schema`` its ``$ref`` points to (``#/$defs/model``)."""
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return node
    if not ref.startswith("#/"):
        raise KeyError(f"the config schema refers outside itself: {ref!r}")
    target: Any = schema
    for part in ref[2:].split("/"):
        target = target[part]
    return _resolved(schema, target)
