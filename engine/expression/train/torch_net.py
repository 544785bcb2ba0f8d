"""learned-v1's network in torch, for training (serving runs the same weights in numpy: learned_runtime.py)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from engine.expression.learned_runtime import ModelConfig, load_pretrained, save_pretrained


class CausalConv(nn.Module):
    def __init__(self, cin: int, cout: int, k: int):
        super().__init__()
        self.k = k
        self.conv = nn.Conv1d(cin, cout, k)

    def forward(self, x: torch.Tensor, cache: torch.Tensor | None):
        """x (B, C, T); cache (B, C, k-1) of the previous inputs or None (= zeros)."""
        if cache is None:
            cache = x.new_zeros(x.shape[0], x.shape[1], self.k - 1)
        xx = torch.cat([cache, x], dim=2)
        return self.conv(xx), xx[:, :, xx.shape[2] - (self.k - 1):]


class ExpressionNet(nn.Module):
    """Log-mel (B, T, n_mels) -> viseme logits (B, T, 15), jaw (B, T) in 0..1, new state."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.register_buffer("mean", torch.zeros(cfg.n_mels))
        self.register_buffer("std", torch.ones(cfg.n_mels))
        convs = []
        cin = cfg.n_mels
        for _ in range(cfg.n_conv):
            convs.append(CausalConv(cin, cfg.channels, cfg.kernel))
            cin = cfg.channels
        self.convs = nn.ModuleList(convs)
        self.gru = nn.GRU(cin, cfg.hidden, batch_first=True)
        self.head = nn.Linear(cfg.hidden + cin, cfg.n_visemes + 1)

    def forward(self, feats: torch.Tensor, state: list | None = None):
        x = ((feats - self.mean) / self.std).transpose(1, 2)
        new_state = []
        for i, conv in enumerate(self.convs):
            x, c = conv(x, None if state is None else state[i])
            x = torch.nn.functional.gelu(x)
            new_state.append(c)
        x = x.transpose(1, 2)
        h, hn = self.gru(x, None if state is None else state[-1])
        new_state.append(hn)
        out = self.head(torch.cat([h, x], dim=2))
        return out[..., :-1], torch.sigmoid(out[..., -1]), new_state

    # ---------------------------------------------------------------- I/O
    def save_pretrained(self, directory: str | Path, extra: dict | None = None) -> None:
        save_pretrained(directory, self.cfg, {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()},
                        extra)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> "ExpressionNet":
        cfg, arrays = load_pretrained(directory)
        net = cls(cfg)
        # The optional video jaw head is fitted and served in numpy (train/video_head.py), not part of this module.
        net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()
                             if not k.startswith("video_head.")})
        net.eval()
        return net



def n_params(net: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in net.parameters())
