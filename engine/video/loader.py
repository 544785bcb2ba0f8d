"""Load the released DiT shards (and merge the LiveAvatar LoRA) straight onto the target device.

The model is built on the meta device, every tensor is read from its shard with
``safe_open(device=...)`` in the wanted dtype, checked against the module's shape, and
assigned; nothing passes through a full CPU copy of the 32 GB model.
"""
from __future__ import annotations

import json
import logging
import os
import re

import torch
from torch import nn

from engine.video.checkpoints import DIT_INDEX, FETCH_HINT, CheckpointError, find_lora, read_index
from engine.video.config import S2VConfig
from engine.video.dit import WanS2VTransformer

log = logging.getLogger("engine.video.loader")


def _list(keys, n: int = 8) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:n]) + (f" … ({len(keys)} in all)" if len(keys) > n else "")


def load_dit(ckpt_dir: str, device="cpu", dtype: torch.dtype = torch.bfloat16,
             rope_max_pos: int | None = None) -> WanS2VTransformer:
    from safetensors import safe_open

    cfg_path = os.path.join(ckpt_dir, "config.json")
    idx_path = os.path.join(ckpt_dir, DIT_INDEX)
    for p in (cfg_path, idx_path):
        if not os.path.isfile(p):
            raise CheckpointError(f"DiT checkpoint: {p} is missing; {FETCH_HINT}")
    cfg = S2VConfig.from_json(cfg_path)
    if rope_max_pos:
        cfg.rope_max_pos = rope_max_pos
    weight_map = read_index(idx_path)
    with torch.device("meta"):
        model = WanS2VTransformer(cfg)
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = set(expected) - set(weight_map)
    unexpected = set(weight_map) - set(expected)
    if missing or unexpected:
        raise CheckpointError(
            f"DiT checkpoint {ckpt_dir} does not match {cfg_path}: "
            + (f"missing keys: {_list(missing)}; " if missing else "")
            + (f"unexpected keys: {_list(unexpected)}; " if unexpected else "")
            + f"the released Wan2.2-S2V-14B has 1260 tensors; {FETCH_HINT}")
    by_shard: dict[str, list[str]] = {}
    for k, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(k)
    state: dict[str, torch.Tensor] = {}
    dev = str(torch.device(device))
    for shard, keys in sorted(by_shard.items()):
        path = os.path.join(ckpt_dir, shard)
        if not os.path.isfile(path):
            raise CheckpointError(f"DiT shard {path} (named by the index) is missing; {FETCH_HINT}")
        state.update(read_shard(path, keys, expected, dev, dtype))
    model.load_state_dict(state, assign=True, strict=True)
    return model.eval().requires_grad_(False)


def read_shard(path: str, keys: list[str], expected: dict[str, tuple], device: str = "cpu",
               dtype: torch.dtype = torch.bfloat16) -> dict[str, torch.Tensor]:
    """`keys` of one safetensors shard, each checked against its `expected` shape, in `dtype` on `device`."""
    from safetensors import SafetensorError, safe_open

    shard = os.path.basename(path)
    out = {}
    try:
        with safe_open(path, framework="pt", device=device) as f:
            present = set(f.keys())
            absent = [k for k in keys if k not in present]
            if absent:
                raise CheckpointError(f"DiT shard {shard} lacks keys the index puts there: {_list(absent)}; "
                                      f"the download is incomplete or corrupt; {FETCH_HINT}")
            for k in keys:
                stored = f.get_slice(k).get_dtype()
                if stored.startswith("F8"):  # an FP8 export: no scales we know how to apply
                    raise CheckpointError(
                        f"DiT key {k} in {shard} is stored as {stored}; this loader reads the released bf16 "
                        f"weights and makes its own FP8 copies at load with --quant fp8 (AVATAR_VIDEO_QUANT=fp8): "
                        f"point --ckpt_dir at the original Wan2.2-S2V-14B shards; {FETCH_HINT}")
                shape = tuple(f.get_slice(k).get_shape())
                if shape != expected[k]:
                    raise CheckpointError(f"DiT key {k} in {shard} has shape {list(shape)}, the model built from "
                                          f"config.json expects {list(expected[k])}; the shards and config.json are "
                                          f"from different models or the download is corrupt; {FETCH_HINT}")
                out[k] = f.get_tensor(k).to(dtype)
    except (SafetensorError, OSError) as exc:  # a damaged header or a file shorter than it says
        raise CheckpointError(f"DiT shard {path} is not a readable safetensors file ({str(exc)[:200]}); the "
                              f"download is incomplete or corrupt; {FETCH_HINT}") from None
    return out


# -- LoRA ------------------------------------------------------------------------------------------

_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<mod>.+?)\.lora_(?P<ab>[AB])(?:\.(?P<adapter>[^.]+))?\.weight$")


def read_lora(path: str) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], float | None]:
    """{module path: (A [r, in], B [out, r])} from a PEFT-style file; tolerant of the
    ``base_model.model.`` prefix and the ``.default`` adapter segment."""
    from safetensors.torch import load_file

    from safetensors import SafetensorError

    path = find_lora(path)
    try:
        raw = load_file(path)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"LoRA {path} is not a readable safetensors file ({str(exc)[:200]}); fetch it again "
                              "with `avatar-bridge models fetch liveavatar`") from None
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    alpha = None
    bad = []
    for k, v in raw.items():
        if k.endswith(".alpha"):
            if v.numel() != 1:
                raise CheckpointError(f"LoRA {path}: {k} holds {v.numel()} values; alpha is one number")
            alpha = float(v.reshape(()))
            continue
        m = _LORA_KEY.match(k)
        if not m:
            bad.append(k)
            continue
        pairs.setdefault(m["mod"], {})[m["ab"]] = v
    if bad:
        raise CheckpointError(f"LoRA {path}: keys not in PEFT form '<module>.lora_A|lora_B[.adapter].weight': "
                              f"{_list(bad)}")
    half = [m for m, ab in pairs.items() if len(ab) != 2]
    if half:
        raise CheckpointError(f"LoRA {path}: modules with only one of lora_A / lora_B: {_list(half)}")
    cfg = os.path.join(os.path.dirname(path), "adapter_config.json")
    if alpha is None and os.path.isfile(cfg):
        with open(cfg) as fh:
            c = json.load(fh)
        alpha = float(c["lora_alpha"]) / float(c["r"])
    return {m: (ab["A"], ab["B"]) for m, ab in pairs.items()}, alpha


@torch.no_grad()
def merge_lora(model: nn.Module, path: str, scale: float | None = None, alpha: float = 64.0, rank: int = 128) -> int:
    """W <- W + scale · (B @ A) in fp32, stored back in W's dtype (PEFT merge_and_unload).
    ``scale`` defaults to an adapter_config.json beside the file, else alpha/rank of the LiveAvatar
    training config (64/128 = 0.5). Returns the number of merged layers."""
    pairs, file_scale = read_lora(path)
    scale = scale if scale is not None else (file_scale if file_scale is not None else alpha / rank)
    modules = dict(model.named_modules())
    for name, (a, b) in sorted(pairs.items()):
        mod = modules.get(name)
        if not isinstance(mod, nn.Linear):
            raise CheckpointError(f"LoRA {path}: {name} is not a Linear layer of the DiT "
                                  f"({'absent' if mod is None else type(mod).__name__}); is this the LiveAvatar LoRA?")
        w = mod.weight
        if a.shape[1] != w.shape[1] or b.shape[0] != w.shape[0] or a.shape[0] != b.shape[1]:
            raise CheckpointError(f"LoRA {path}: {name} lora_A {list(a.shape)} / lora_B {list(b.shape)} do not fit "
                                  f"the weight {list(w.shape)}")
        delta = b.to(w.device, torch.float32) @ a.to(w.device, torch.float32)
        w.copy_((w.float() + scale * delta).to(w.dtype))
    log.info("merged LoRA", extra={"path": path, "layers": len(pairs), "scale": scale})
    return len(pairs)
