"""Configuration of the Wan2.2-S2V DiT, read from the released ``config.json``.

Field names and defaults follow ``WanModel_S2V.__init__`` (Wan2.2) so the released
config.json maps one to one; unknown keys (``_class_name``, ``_diffusers_version``,
training-only switches) are kept in ``extra`` and ignored.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field


@dataclass
class S2VConfig:
    dim: int = 5120
    ffn_dim: int = 13824
    freq_dim: int = 256
    text_dim: int = 4096
    text_len: int = 512
    in_dim: int = 16
    out_dim: int = 16
    num_heads: int = 40
    num_layers: int = 40
    patch_size: tuple = (1, 2, 2)
    eps: float = 1e-6
    qk_norm: bool = True
    cross_attn_norm: bool = True
    audio_dim: int = 1024
    num_audio_token: int = 4
    audio_num_layers: int = 25  # wav2vec2 hidden states mixed by casual_audio_encoder.weights
    audio_inject_layers: tuple = (0, 4, 8, 12, 16, 20, 24, 27, 30, 33, 36, 39)
    cond_dim: int = 16
    enable_adain: bool = True
    adain_mode: str = "attn_norm"
    enable_framepack: bool = True
    framepack_drop_mode: str = "padd"
    zero_timestep: bool = True
    add_last_motion: bool = True
    motion_frames: tuple = (73, 19)  # pixel frames, latent frames of the motion memory
    rope_max_pos: int = 1024  # RoPE table length (LiveAvatar uses 45000)
    extra: dict = field(default_factory=dict)

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @classmethod
    def from_dict(cls, data: dict) -> "S2VConfig":
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        kw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in known}
        cfg = cls(**kw, extra={k: v for k, v in data.items() if k not in known})
        if cfg.dim % cfg.num_heads or (cfg.dim // cfg.num_heads) % 2:
            raise ValueError(f"config: dim {cfg.dim} must split into {cfg.num_heads} heads of even size")
        if not cfg.enable_adain or cfg.adain_mode != "attn_norm" or not cfg.enable_framepack:
            raise ValueError("config: only the released S2V variant is supported (enable_adain true, adain_mode "
                             "'attn_norm', enable_framepack true); got "
                             f"enable_adain={cfg.enable_adain} adain_mode={cfg.adain_mode!r} "
                             f"enable_framepack={cfg.enable_framepack}")
        if cfg.extra.get("enable_motioner"):
            raise ValueError("config: enable_motioner=true is not supported (the released S2V has it off)")
        return cfg

    @classmethod
    def from_json(cls, path: str) -> "S2VConfig":
        with open(path) as fh:
            return cls.from_dict(json.load(fh))

    def to_dict(self) -> dict:
        d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items() if k != "extra"}
        d.update(self.extra)
        return d

    def save(self, folder: str) -> None:
        with open(os.path.join(folder, "config.json"), "w") as fh:
            json.dump({"_class_name": "WanModel_S2V", **self.to_dict()}, fh, indent=2)
