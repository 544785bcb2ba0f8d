"""The expression engines a worker can load, by name."""
from __future__ import annotations

import importlib

from engine.expression.base import ExpressionEngine
from engine.worker.specs import EngineInfo

# name -> "module:Class"; the first entry is the shipped default: the engine that measures best on real
# speakers it never heard (docs/quality.md). learned-v2 (trained on real speech) replaced learned-v1 (trained on
# synthetic speech), which had replaced dsp-v1; both stay selectable per stream.
ENGINES: dict[str, str] = {
    "learned-v2": "engine.expression.learned:RealSpeechEngine",
    "learned-v1": "engine.expression.learned:LearnedExpressionEngine",
    "dsp-v1": "engine.expression.dsp:DspExpressionEngine",
}
DEFAULT_ENGINE = "learned-v2"


def load_engine(name: str, learned_weights: str = "") -> ExpressionEngine:
    """An engine by name; ``learned_weights`` (the server's setting) replaces the default engine's weights."""
    module, cls = ENGINES[name].split(":")
    klass = getattr(importlib.import_module(module), cls)
    return klass(learned_weights) if learned_weights and name == DEFAULT_ENGINE else klass()


def describe_engines(engines: dict[str, ExpressionEngine] | None = None) -> list[EngineInfo]:
    """GetCapabilities rows for loaded engines (default: each engine loaded with the shipped weights)."""
    engines = engines if engines is not None else {name: load_engine(name) for name in ENGINES}
    return [EngineInfo(name=eng.name, kind="expression", description=eng.description, lookahead_s=eng.lookahead_s,
                       is_default=name == DEFAULT_ENGINE) for name, eng in engines.items()]
