"""The expression engines a worker can load, by name."""
from __future__ import annotations

import importlib

from engine.expression.base import ExpressionEngine

# name -> "module:Class"; the first entry is the shipped default.
ENGINES: dict[str, str] = {
    "dsp-v1": "engine.expression.dsp:DspExpressionEngine",
    "learned-v1": "engine.expression.learned:LearnedExpressionEngine",
}
DEFAULT_ENGINE = "dsp-v1"


def load_engine(name: str) -> ExpressionEngine:
    module, cls = ENGINES[name].split(":")
    return getattr(importlib.import_module(module), cls)()


def describe_engines() -> list[dict]:
    out = []
    for name in ENGINES:
        eng = load_engine(name)
        out.append({"name": eng.name, "kind": "expression", "description": eng.description,
                    "lookahead_s": eng.lookahead_s, "is_default": name == DEFAULT_ENGINE})
    return out
