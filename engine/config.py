"""The one base class for config dataclasses: model configs read from a checkpoint's config.json, engine
settings, and the typed messages that cross the worker seam (engine/worker/specs.py).

``from_dict`` takes the known fields (unknown keys are ignored, so a newer file or peer may add keys) and builds
nested configs named in ``_nested``; ``as_dict`` is the inverse. It imports nothing from the engines.
"""
from __future__ import annotations

import dataclasses
from typing import ClassVar


class ConfigMixin:
    _nested: ClassVar[dict[str, type]] = {}  # field name -> ConfigMixin type of a nested config

    @classmethod
    def from_dict(cls, d: dict):
        kw = {}
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue  # the field's default
            value = d[f.name]
            nested = cls._nested.get(f.name)
            kw[f.name] = nested.from_dict(value) if nested is not None and value is not None else value
        return cls(**kw)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)
