"""The expression engines a worker can load, by name."""
from __future__ import annotations

import importlib

from engine.expression.base import ExpressionEngine

# name -> "module:Class"; the first entry is the shipped default: the engine that measures best on real
# speakers it never heard (docs/quality.md). learned-v2 (trained on real speech) replaced learned-v1 (trained on
# synthetic speech), which had replaced dsp-v1; both stay selectable per stream.
ENGINES: dict[str, str] = {
    "learned-v2": "engine.expression.learned:RealSpeechEngine",
    "learned-v1": "engine.expression.learned:LearnedExpressionEngine",
    "dsp-v1": "engine.expression.dsp:DspExpressionEngine",
}
DEFAULT_ENGINE = "learned-v2"


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
