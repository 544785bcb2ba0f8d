"""Conditioning encoders: umT5-XXL (Wan's .pth renamed into transformers' UMT5EncoderModel)
and wav2vec2 (the shipped HF folder via transformers' Wav2Vec2Model)."""
from __future__ import annotations

import html
import os
import re

import numpy as np
import torch
import torch.nn.functional as F

from engine.video.checkpoints import FETCH_HINT, CheckpointError

# -- umT5 ------------------------------------------------------------------------------------------

_T5_RULES = [
    (r"^token_embedding\.weight$", "shared.weight"),
    (r"^blocks\.(\d+)\.norm1\.weight$", r"encoder.block.\1.layer.0.layer_norm.weight"),
    (r"^blocks\.(\d+)\.attn\.([qkvo])\.weight$", r"encoder.block.\1.layer.0.SelfAttention.\2.weight"),
    (r"^blocks\.(\d+)\.pos_embedding\.embedding\.weight$",
     r"encoder.block.\1.layer.0.SelfAttention.relative_attention_bias.weight"),
    (r"^blocks\.(\d+)\.norm2\.weight$", r"encoder.block.\1.layer.1.layer_norm.weight"),
    (r"^blocks\.(\d+)\.ffn\.gate\.0\.weight$", r"encoder.block.\1.layer.1.DenseReluDense.wi_0.weight"),
    (r"^blocks\.(\d+)\.ffn\.fc1\.weight$", r"encoder.block.\1.layer.1.DenseReluDense.wi_1.weight"),
    (r"^blocks\.(\d+)\.ffn\.fc2\.weight$", r"encoder.block.\1.layer.1.DenseReluDense.wo.weight"),
    (r"^norm\.weight$", "encoder.final_layer_norm.weight"),
]

UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, relative_attention_max_distance=128,
                feed_forward_proj="gated-gelu", layer_norm_epsilon=1e-6, is_encoder_decoder=False)


def rename_t5_key(k: str) -> str | None:
    for pat, rep in _T5_RULES:
        if re.match(pat, k):
            return re.sub(pat, rep, k)
    return None


class TextEncoder:
    """Tokenizer + UMT5EncoderModel; returns the real tokens' rows (the DiT zero-pads them)."""

    def __init__(self, ckpt_dir: str, device="cpu", dtype=torch.bfloat16, config: dict | None = None,
                 text_len: int = 512):
        from transformers import AutoTokenizer, UMT5Config, UMT5EncoderModel

        from engine.video.checkpoints import T5_FILE, T5_TOKENIZER_DIR
        pth, tok_dir = os.path.join(ckpt_dir, T5_FILE), os.path.join(ckpt_dir, T5_TOKENIZER_DIR)
        for p in (pth, tok_dir):
            if not os.path.exists(p):
                raise CheckpointError(f"text encoder: {p} is missing; {FETCH_HINT}")
        self.tokenizer = AutoTokenizer.from_pretrained(tok_dir)
        cfg = UMT5Config(**{**UMT5_XXL, **(config or {})})
        with torch.device("meta"):
            model = UMT5EncoderModel(cfg)
        expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        sd = torch.load(pth, map_location="cpu", weights_only=True, mmap=True)  # 11 GB: no full RAM copy
        state, unknown = {}, []
        for k, v in sd.items():
            new = rename_t5_key(k)
            if new is None or new not in expected:
                unknown.append(k)
                continue
            if tuple(v.shape) != expected[new]:
                raise CheckpointError(f"text encoder key {k} has shape {list(v.shape)}, expected {list(expected[new])}")
            state[new] = v.to(device=device, dtype=dtype)
        if "shared.weight" in state:
            state["encoder.embed_tokens.weight"] = state["shared.weight"]
        missing = sorted(set(expected) - set(state))
        if unknown or missing:
            raise CheckpointError(f"text encoder {pth}: unexpected original keys {unknown[:8]}; missing (HF names) "
                                  f"{missing[:8]}; {FETCH_HINT}")
        model.load_state_dict(state, assign=True, strict=True)
        model.tie_weights()
        self.model = model.eval().requires_grad_(False)
        self.text_len = text_len
        self.device = device

    @staticmethod
    def clean(text: str) -> str:
        try:
            import ftfy
            text = ftfy.fix_text(text)
        except ImportError:
            pass
        text = html.unescape(html.unescape(text)).strip()
        return re.sub(r"\s+", " ", text).strip()

    @torch.no_grad()
    def __call__(self, prompt: str) -> torch.Tensor:
        tok = self.tokenizer([self.clean(prompt)], padding="max_length", truncation=True,
                             max_length=self.text_len, add_special_tokens=True, return_tensors="pt")
        ids, mask = tok.input_ids.to(self.device), tok.attention_mask.to(self.device)
        out = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
        return out[:, :int(mask.sum())]


# -- wav2vec2 --------------------------------------------------------------------------------------


class AudioFeatures:
    """wav2vec2 hidden states (all 25) at 50 Hz -> 30 Hz -> one row per video frame."""

    def __init__(self, folder: str, device="cpu", dtype=torch.float32):
        from transformers import Wav2Vec2Model

        if not os.path.isfile(os.path.join(folder, "config.json")):
            raise CheckpointError(f"wav2vec2 folder {folder} lacks config.json; {FETCH_HINT}")
        self.model = Wav2Vec2Model.from_pretrained(folder, torch_dtype=dtype).to(device).eval()
        self.device, self.dtype = device, dtype

    @torch.no_grad()
    def hidden_states(self, audio16k: np.ndarray) -> torch.Tensor:
        """mono 16 kHz float -> [layers, T50, C] (fp32)."""
        x = np.asarray(audio16k, np.float32)
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)  # Wav2Vec2FeatureExtractor(do_normalize=True)
        inp = torch.from_numpy(x)[None].to(self.device, self.dtype)
        out = self.model(inp, output_hidden_states=True)
        return torch.stack(out.hidden_states, 0)[:, 0].float()

    @staticmethod
    def bucket(hs: torch.Tensor, fps: int, frames_per_clip: int) -> tuple[torch.Tensor, int]:
        """[L, T50, C] -> ([1, L, C, clips·frames], clips): 30 Hz linear resample, nearest row per frame."""
        t50 = hs.shape[1]
        t30 = int(t50 / 50 * 30)
        x = F.interpolate(hs.permute(0, 2, 1), size=max(t30, 1), mode="linear", align_corners=True)  # [L, C, T30]
        clips = int(t30 // (frames_per_clip * 30 / fps)) + 1
        total = clips * frames_per_clip
        rows = np.round(np.arange(total) * 30 / fps).astype(np.int64)  # numpy: halves to even
        out = torch.zeros(x.shape[0], x.shape[1], total)
        ok = rows < t30
        out[:, :, torch.from_numpy(np.nonzero(ok)[0])] = x[:, :, torch.from_numpy(rows[ok])]
        return out[None], clips
