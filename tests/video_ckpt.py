"""Writes tiny checkpoints in the RELEASED layouts and key names, enumerated from the spec's tables
(../shared/specs/avatar_dit_models.md §1.2, §2.2, §3.1, §5.2, §6), not from our modules: the loaders
must map these names themselves."""
from __future__ import annotations

import json
import os

import numpy as np
import torch

# Tiny DiT config (config.json keys of WanModel_S2V).
TINY_DIT = dict(dim=64, ffn_dim=128, freq_dim=32, text_dim=32, text_len=16, in_dim=16, out_dim=16, num_heads=4,
                num_layers=4, audio_dim=32, num_audio_token=4, audio_inject_layers=[0, 2, 3], cond_dim=16,
                enable_adain=True, adain_mode="attn_norm", enable_framepack=True, enable_motioner=False,
                framepack_drop_mode="padd", zero_init=True, zero_timestep=True, add_last_motion=True,
                trainable_token_pos_emb=False, model_type="s2v", patch_size=[1, 2, 2],
                # Not in the released config.json (73/19 there): a 13-frame motion memory keeps the tiny
                # VAE's CPU time small; 13 = 1 + 4·3 keeps the audio prefix/stride arithmetic exact.
                motion_frames=[13, 4])
TINY_T5 = dict(vocab_size=64, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4)
TINY_VAE_BASE = 4


def dit_keys(c: dict) -> dict[str, tuple]:
    D, Fd, L = c["dim"], c["ffn_dim"], c["num_layers"]
    k = {"patch_embedding.weight": (D, 16, 1, 2, 2), "patch_embedding.bias": (D,),
         "text_embedding.0.weight": (D, c["text_dim"]), "text_embedding.0.bias": (D,),
         "text_embedding.2.weight": (D, D), "text_embedding.2.bias": (D,),
         "time_embedding.0.weight": (D, c["freq_dim"]), "time_embedding.0.bias": (D,),
         "time_embedding.2.weight": (D, D), "time_embedding.2.bias": (D,),
         "time_projection.1.weight": (6 * D, D), "time_projection.1.bias": (6 * D,),
         "head.modulation": (1, 2, D), "head.head.weight": (64, D), "head.head.bias": (64,)}
    for i in range(L):
        p = f"blocks.{i}."
        k[p + "modulation"] = (1, 6, D)
        for a in ("self_attn", "cross_attn"):
            for n in "qkvo":
                k[f"{p}{a}.{n}.weight"], k[f"{p}{a}.{n}.bias"] = (D, D), (D,)
            k[f"{p}{a}.norm_q.weight"] = k[f"{p}{a}.norm_k.weight"] = (D,)
        k[p + "norm3.weight"] = k[p + "norm3.bias"] = (D,)
        k[p + "ffn.0.weight"], k[p + "ffn.0.bias"] = (Fd, D), (Fd,)
        k[p + "ffn.2.weight"], k[p + "ffn.2.bias"] = (D, Fd), (D,)
    A = c["audio_dim"]
    e = "casual_audio_encoder."
    k.update({"cond_encoder.weight": (D, 16, 1, 2, 2), "cond_encoder.bias": (D,),
              "trainable_cond_mask.weight": (3, D), e + "weights": (1, 25, 1, 1),
              e + "encoder.conv1_local.conv.weight": (D, A, 3), e + "encoder.conv1_local.conv.bias": (D,),
              e + "encoder.conv1_global.conv.weight": (D // 4, A, 3), e + "encoder.conv1_global.conv.bias": (D // 4,),
              e + "encoder.conv2.conv.weight": (D // 2, D // 4, 3), e + "encoder.conv2.conv.bias": (D // 2,),
              e + "encoder.conv3.conv.weight": (D, D // 2, 3), e + "encoder.conv3.conv.bias": (D,),
              e + "encoder.final_linear.weight": (D, D), e + "encoder.final_linear.bias": (D,),
              e + "encoder.padding_tokens": (1, 1, 1, D),
              "frame_packer.proj.weight": (D, 16, 1, 2, 2), "frame_packer.proj.bias": (D,),
              "frame_packer.proj_2x.weight": (D, 16, 2, 4, 4), "frame_packer.proj_2x.bias": (D,),
              "frame_packer.proj_4x.weight": (D, 16, 4, 8, 8), "frame_packer.proj_4x.bias": (D,)})
    for j in range(len(c["audio_inject_layers"])):
        p = f"audio_injector.injector.{j}."
        for n in "qkvo":
            k[f"{p}{n}.weight"], k[f"{p}{n}.bias"] = (D, D), (D,)
        k[p + "norm_q.weight"] = k[p + "norm_k.weight"] = (D,)
        k[f"audio_injector.injector_adain_layers.{j}.linear.weight"] = (2 * D, D)
        k[f"audio_injector.injector_adain_layers.{j}.linear.bias"] = (2 * D,)
    return k


def _rand(shape, g, name):
    if name.endswith(("norm_q.weight", "norm_k.weight", "norm3.weight")) or name.endswith("gamma"):
        return 1 + 0.1 * torch.randn(shape, generator=g)
    fan_in = max(1, int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else shape[0])
    return torch.randn(shape, generator=g) / fan_in ** 0.5


def write_dit(folder: str, cfg: dict = TINY_DIT, shards: int = 3, seed: int = 0, dtype=torch.bfloat16,
              drop: str | None = None, reshape: str | None = None) -> None:
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    keys = dit_keys(cfg)
    tensors = {n: _rand(s, g, n).to(dtype) for n, s in keys.items()}
    if drop:
        tensors.pop(drop)
    if reshape:
        tensors[reshape] = tensors[reshape][..., :-1].contiguous()
    names = sorted(tensors)
    parts = [names[i::shards] for i in range(shards)]
    weight_map = {}
    for i, part in enumerate(parts, 1):
        fn = f"diffusion_pytorch_model-{i:05d}-of-{shards:05d}.safetensors"
        save_file({n: tensors[n] for n in part}, os.path.join(folder, fn), metadata={"format": "pt"})
        weight_map.update({n: fn for n in part})
    with open(os.path.join(folder, "diffusion_pytorch_model.safetensors.index.json"), "w") as fh:
        json.dump({"metadata": {"total_size": sum(t.numel() * t.element_size() for t in tensors.values())},
                   "weight_map": weight_map}, fh)
    with open(os.path.join(folder, "config.json"), "w") as fh:
        json.dump({"_class_name": "WanModel_S2V", "_diffusers_version": "0.33.0", **cfg}, fh)


def vae_keys(b: int) -> dict[str, tuple]:
    c1, c2, c4 = b, 2 * b, 4 * b
    k = {}

    def res(p, i, o):
        k.update({p + "residual.0.gamma": (i, 1, 1, 1), p + "residual.2.weight": (o, i, 3, 3, 3),
                  p + "residual.2.bias": (o,), p + "residual.3.gamma": (o, 1, 1, 1),
                  p + "residual.6.weight": (o, o, 3, 3, 3), p + "residual.6.bias": (o,)})
        if i != o:
            k.update({p + "shortcut.weight": (o, i, 1, 1, 1), p + "shortcut.bias": (o,)})

    def mid(p, C):
        res(p + "middle.0.", C, C)
        k.update({p + "middle.1.norm.gamma": (C, 1, 1), p + "middle.1.to_qkv.weight": (3 * C, C, 1, 1),
                  p + "middle.1.to_qkv.bias": (3 * C,), p + "middle.1.proj.weight": (C, C, 1, 1),
                  p + "middle.1.proj.bias": (C,)})
        res(p + "middle.2.", C, C)

    e = "encoder."
    k[e + "conv1.weight"], k[e + "conv1.bias"] = (c1, 3, 3, 3, 3), (c1,)
    res(e + "downsamples.0.", c1, c1)
    res(e + "downsamples.1.", c1, c1)
    k[e + "downsamples.2.resample.1.weight"], k[e + "downsamples.2.resample.1.bias"] = (c1, c1, 3, 3), (c1,)
    res(e + "downsamples.3.", c1, c2)
    res(e + "downsamples.4.", c2, c2)
    for i, C in ((5, c2), (8, c4)):
        k.update({f"{e}downsamples.{i}.resample.1.weight": (C, C, 3, 3), f"{e}downsamples.{i}.resample.1.bias": (C,),
                  f"{e}downsamples.{i}.time_conv.weight": (C, C, 3, 1, 1), f"{e}downsamples.{i}.time_conv.bias": (C,)})
    res(e + "downsamples.6.", c2, c4)
    res(e + "downsamples.7.", c4, c4)
    res(e + "downsamples.9.", c4, c4)
    res(e + "downsamples.10.", c4, c4)
    mid(e, c4)
    k[e + "head.0.gamma"] = (c4, 1, 1, 1)
    k[e + "head.2.weight"], k[e + "head.2.bias"] = (32, c4, 3, 3, 3), (32,)
    k["conv1.weight"], k["conv1.bias"] = (32, 32, 1, 1, 1), (32,)
    k["conv2.weight"], k["conv2.bias"] = (16, 16, 1, 1, 1), (16,)
    d = "decoder."
    k[d + "conv1.weight"], k[d + "conv1.bias"] = (c4, 16, 3, 3, 3), (c4,)
    mid(d, c4)
    for i in (0, 1, 2):
        res(f"{d}upsamples.{i}.", c4, c4)
    for i in (3, 7):
        k.update({f"{d}upsamples.{i}.resample.1.weight": (c2, c4, 3, 3), f"{d}upsamples.{i}.resample.1.bias": (c2,),
                  f"{d}upsamples.{i}.time_conv.weight": (2 * c4, c4, 3, 1, 1),
                  f"{d}upsamples.{i}.time_conv.bias": (2 * c4,)})
    res(d + "upsamples.4.", c2, c4)
    res(d + "upsamples.5.", c4, c4)
    res(d + "upsamples.6.", c4, c4)
    for i in (8, 9, 10):
        res(f"{d}upsamples.{i}.", c2 if i == 8 else c2, c2)
    k[d + "upsamples.11.resample.1.weight"], k[d + "upsamples.11.resample.1.bias"] = (c1, c2, 3, 3), (c1,)
    for i in (12, 13, 14):
        res(f"{d}upsamples.{i}.", c1, c1)
    k[d + "head.0.gamma"] = (c1, 1, 1, 1)
    k[d + "head.2.weight"], k[d + "head.2.bias"] = (3, c1, 3, 3, 3), (3,)
    return k


def write_vae(path: str, base: int = TINY_VAE_BASE, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    sd = {n: _rand(s, g, n) for n, s in vae_keys(base).items()}
    torch.save(sd, path)
    return sd


def t5_keys(c: dict) -> dict[str, tuple]:
    d, f, h = c["d_model"], c["d_ff"], c["num_heads"]
    inner = h * c["d_kv"]
    k = {"token_embedding.weight": (c["vocab_size"], d), "norm.weight": (d,)}
    for i in range(c["num_layers"]):
        p = f"blocks.{i}."
        k.update({p + "norm1.weight": (d,), p + "norm2.weight": (d,), p + "attn.q.weight": (inner, d),
                  p + "attn.k.weight": (inner, d), p + "attn.v.weight": (inner, d), p + "attn.o.weight": (d, inner),
                  p + "pos_embedding.embedding.weight": (32, h), p + "ffn.gate.0.weight": (f, d),
                  p + "ffn.fc1.weight": (f, d), p + "ffn.fc2.weight": (d, f)})
    return k


def write_t5(folder: str, cfg: dict = TINY_T5, seed: int = 2) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    g = torch.Generator().manual_seed(seed)
    torch.save({n: _rand(s, g, n).to(torch.bfloat16) for n, s in t5_keys(cfg).items()},
               os.path.join(folder, "models_t5_umt5-xxl-enc-bf16.pth"))
    words = ["<pad>", "</s>", "<unk>"] + ("a woman man is talking speaking smiling to the camera with clear face "
                                         "expression natural light studio background news anchor").split()
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    fast.save_pretrained(os.path.join(folder, "google", "umt5-xxl"))


def write_wav2vec(folder: str, audio_dim: int, seed: int = 3) -> None:
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    torch.manual_seed(seed)
    cfg = Wav2Vec2Config(hidden_size=audio_dim, num_hidden_layers=24, num_attention_heads=2, intermediate_size=32,
                         conv_dim=(16,) * 7, do_stable_layer_norm=True, feat_extract_norm="layer",
                         num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2, vocab_size=32,
                         hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
                         layerdrop=0.0, mask_time_prob=0.0)
    Wav2Vec2ForCTC(cfg).save_pretrained(folder)


def write_lora(path: str, cfg: dict = TINY_DIT, rank: int = 4, seed: int = 4, prefix: str = "base_model.model.",
               adapter: str = ".default") -> dict:
    """PEFT naming: <prefix><module>.lora_A<adapter>.weight for the 448-layer target set."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    D, Fd = cfg["dim"], cfg["ffn_dim"]
    targets = {}
    for i in range(cfg["num_layers"]):
        for a in ("self_attn", "cross_attn"):
            for n in "qkvo":
                targets[f"blocks.{i}.{a}.{n}"] = (D, D)
        targets[f"blocks.{i}.ffn.0"] = (D, Fd)
        targets[f"blocks.{i}.ffn.2"] = (Fd, D)
    for j in range(len(cfg["audio_inject_layers"])):
        for n in "qkvo":
            targets[f"audio_injector.injector.{j}.{n}"] = (D, D)
    out = {}
    for m, (i, o) in targets.items():
        out[f"{prefix}{m}.lora_A{adapter}.weight"] = (torch.randn(rank, i, generator=g) * 0.05).to(torch.bfloat16)
        out[f"{prefix}{m}.lora_B{adapter}.weight"] = (torch.randn(o, rank, generator=g) * 0.05).to(torch.bfloat16)
    save_file(out, path)
    return out


def write_all(folder: str, lora: bool = True, dit: dict | None = None) -> str:
    """A complete tiny S2V checkpoint directory (+ LoRA file). Returns the folder. ``dit``: config keys over
    TINY_DIT (e.g. ``dim=256, num_heads=2`` for the released head dim, 128, which FlashAttention-3 needs)."""
    os.makedirs(folder, exist_ok=True)
    cfg = {**TINY_DIT, **(dit or {})}
    write_dit(folder, cfg)
    write_vae(os.path.join(folder, "Wan2.1_VAE.pth"))
    write_t5(folder)
    write_wav2vec(os.path.join(folder, "wav2vec2-large-xlsr-53-english"), TINY_DIT["audio_dim"])
    with open(os.path.join(folder, "component_configs.json"), "w") as fh:
        json.dump({"vae": {"base_dim": TINY_VAE_BASE}, "t5": TINY_T5}, fh)
    if lora:
        write_lora(os.path.join(folder, "liveavatar.safetensors"), cfg)
    return folder


def sample_inputs(seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """A 256x256 RGB test portrait (colour ramps) and `seconds` of 16 kHz amplitude-modulated tone, for GPU
    checks of the pipeline on the tiny checkpoints."""
    yy, xx = np.mgrid[0:256, 0:256]
    img = np.stack([xx % 256, yy % 256, (xx + yy) % 256], -1).astype(np.uint8)
    t = np.arange(int(16000 * seconds)) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    return img, audio


def tiny_dit(ckpt: str):
    """The tiny DiT of a `write_all` folder on the CPU in fp32, RoPE table long enough for LiveAvatar."""
    from engine.video.loader import load_dit
    return load_dit(ckpt, "cpu", torch.float32, rope_max_pos=45000)


def causal_inputs(dit, blocks: int, seed: int = 0) -> dict:
    """Keyword inputs of `engine.video.speed.causal_latents` for the tiny DiT: text context, ref and motion
    latents (8x8), audio features and one noise block (3 latents) per block."""
    cfg = dit.config
    g = torch.Generator().manual_seed(seed)
    hl = wl = 8
    with torch.no_grad():
        ctx = dit.embed_text(torch.randn(1, 5, cfg.text_dim, generator=g))
    return dict(context=ctx, ref=torch.randn(1, 16, 1, hl, wl, generator=g),
                motion=torch.randn(1, 16, 4, hl, wl, generator=g),
                audio=torch.randn(1, 25, cfg.audio_dim, 12 * blocks, generator=g),
                noises=[torch.randn(1, 16, 3, hl, wl, generator=g) for _ in range(blocks)])
