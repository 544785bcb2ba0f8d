"""The expression engines a worker can load, by name."""
from __future__ import annotations

import importlib

from engine.expression.base import ExpressionEngine

# name -> "module:Class"; the first entry is the shipped default. learned-v1 replaced dsp-v1 as the
# default once it measured better on real speech (docs/quality.md); dsp-v1 stays selectable per stream.
ENGINES: dict[str, str] = {
    "learned-v1": "engine.expression.learned:LearnedExpressionEngine",
    "learned-v2": "engine.expression.learned:RealSpeechEngine",
    "dsp-v1": "engine.expression.dsp:DspExpressionEngine",
}
DEFAULT_ENGINE = "learned-v1"


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
