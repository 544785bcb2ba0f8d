"""Wan 2.1 VAE: the original ``Wan2.1_VAE.pth`` renamed into diffusers' ``AutoencoderKLWan``
(the same network), latent normalisation, and a streaming decoder that keeps the
causal conv caches between blocks (LiveAvatar's ``stream_decode``)."""
from __future__ import annotations

import os
import re

import torch

from engine.video.checkpoints import FETCH_HINT, CheckpointError

LATENTS_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517,
                -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
LATENTS_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579,
               1.6382, 1.1253, 2.8251, 1.9160]

_RES = {"residual.0.gamma": "norm1.gamma", "residual.2.": "conv1.", "residual.3.gamma": "norm2.gamma",
        "residual.6.": "conv2.", "shortcut.": "conv_shortcut."}
_UP = {**{i: f"up_blocks.0.resnets.{i}" for i in range(3)}, 3: "up_blocks.0.upsamplers.0",
       **{i: f"up_blocks.1.resnets.{i - 4}" for i in range(4, 7)}, 7: "up_blocks.1.upsamplers.0",
       **{i: f"up_blocks.2.resnets.{i - 8}" for i in range(8, 11)}, 11: "up_blocks.2.upsamplers.0",
       **{i: f"up_blocks.3.resnets.{i - 12}" for i in range(12, 15)}}


def rename_vae_key(k: str) -> str:
    """Original Wan2.1_VAE.pth key -> diffusers AutoencoderKLWan key."""
    if k.startswith("conv1."):
        return "quant_conv." + k[6:]
    if k.startswith("conv2."):
        return "post_quant_conv." + k[6:]
    part, rest = k.split(".", 1)  # encoder | decoder
    rest = re.sub(r"^conv1\.", "conv_in.", rest)
    rest = re.sub(r"^middle\.0\.", "mid_block.resnets.0.", rest)
    rest = re.sub(r"^middle\.2\.", "mid_block.resnets.1.", rest)
    rest = re.sub(r"^middle\.1\.", "mid_block.attentions.0.", rest)
    rest = re.sub(r"^head\.0\.gamma", "norm_out.gamma", rest)
    rest = re.sub(r"^head\.2\.", "conv_out.", rest)
    rest = re.sub(r"^downsamples\.(\d+)\.", r"down_blocks.\1.", rest)
    m = re.match(r"^upsamples\.(\d+)\.(.*)$", rest)
    if m:
        rest = f"{_UP[int(m[1])]}.{m[2]}"
    for a, b in _RES.items():
        rest = rest.replace(a, b)
    return f"{part}.{rest}"


def load_vae(path: str, device="cpu", dtype: torch.dtype = torch.float32, config: dict | None = None):
    """``Wan2.1_VAE.pth`` -> ``AutoencoderKLWan`` (default config = Wan 2.1). ``config`` overrides the
    constructor arguments (the tests' tiny VAE)."""
    from diffusers import AutoencoderKLWan

    if not os.path.isfile(path):
        raise CheckpointError(f"VAE file {path} is missing; {FETCH_HINT}")
    sd = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    if not isinstance(sd, dict) or not sd:
        raise CheckpointError(f"VAE file {path} is not a state dict")
    cfg = {"base_dim": 96, "z_dim": 16, "dim_mult": [1, 2, 4, 4], "num_res_blocks": 2,
           "temperal_downsample": [False, True, True], "latents_mean": LATENTS_MEAN, "latents_std": LATENTS_STD}
    cfg.update(config or {})
    with torch.device("meta"):
        vae = AutoencoderKLWan(**cfg)
    expected = {k: tuple(v.shape) for k, v in vae.state_dict().items()}
    renamed = {rename_vae_key(k): (k, v) for k, v in sd.items()}
    missing = set(expected) - set(renamed)
    unexpected = [orig for new, (orig, _) in renamed.items() if new not in expected]
    if missing or unexpected:
        raise CheckpointError(f"VAE {path} does not match the Wan 2.1 VAE: "
                              + (f"missing (diffusers names): {sorted(missing)[:8]}; " if missing else "")
                              + (f"unexpected (original names): {sorted(unexpected)[:8]}; " if unexpected else "")
                              + FETCH_HINT)
    state = {}
    for new, (orig, v) in renamed.items():
        if tuple(v.shape) != expected[new]:
            raise CheckpointError(f"VAE key {orig} has shape {list(v.shape)}, expected {list(expected[new])}")
        state[new] = v.to(device=device, dtype=dtype)
    vae.load_state_dict(state, assign=True, strict=True)
    vae.eval().requires_grad_(False)
    vae.use_tiling = False
    return vae


def _stats(vae, like: torch.Tensor):
    mean = torch.tensor(vae.config.latents_mean, device=like.device, dtype=torch.float32).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std, device=like.device, dtype=torch.float32).view(1, -1, 1, 1, 1)
    return mean, std


@torch.no_grad()
def encode(vae, video: torch.Tensor) -> torch.Tensor:
    """[B,3,T,H,W] in [-1,1] (T = 1+4k) -> normalised latents [B,16,1+k,H/8,W/8] (posterior mean)."""
    p = next(vae.parameters())
    mu = vae.encode(video.to(p.device, p.dtype)).latent_dist.mode().float()
    mean, std = _stats(vae, mu)
    return (mu - mean) / std


class StreamingDecoder:
    """Decode latent blocks one after another with the causal caches kept between calls, so a
    stream of blocks decodes to the same frames as one long decode."""

    def __init__(self, vae):
        self.vae = vae
        self.cache = [None] * vae._cached_conv_counts["decoder"]
        self.started = False

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latents [B,16,n,h,w] -> frames [B,3,T,H,W] in [-1,1] (fp32)."""
        vae = self.vae
        p = next(vae.parameters())
        mean, std = _stats(vae, z)
        x = vae.post_quant_conv((z.float() * std + mean).to(p.device, p.dtype))
        outs = []
        for i in range(x.shape[2]):
            idx = [0]
            outs.append(vae.decoder(x[:, :, i:i + 1], feat_cache=self.cache, feat_idx=idx,
                                    first_chunk=not self.started))
            self.started = True
        return torch.cat(outs, 2).float().clamp(-1, 1)
