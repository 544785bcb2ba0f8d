"""Released Wan key names -> diffusers ``WanTransformer3DModel`` names for the shared core.
Used to run the same weights through diffusers (parity checks and the benchmark baseline)."""
from __future__ import annotations

_SUBS = [("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
         ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
         ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
         ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
         ("time_projection.1", "condition_embedder.time_proj"),
         ("self_attn", "attn1"), ("cross_attn", "attn2"),
         (".q.", ".to_q."), (".k.", ".to_k."), (".v.", ".to_v."), (".o.", ".to_out.0."),
         ("head.modulation", "scale_shift_table"), ("head.head", "proj_out"),
         (".modulation", ".scale_shift_table"), ("ffn.0", "ffn.net.0.proj"), ("ffn.2", "ffn.net.2"),
         (".norm3.", ".norm2.")]
CORE_PREFIXES = ("patch_embedding", "text_embedding", "time_embedding", "time_projection", "blocks", "head")


def core_key_to_diffusers(k: str) -> str:
    for a, b in _SUBS:
        k = k.replace(a, b)
    return k


def core_state_to_diffusers(sd: dict) -> dict:
    return {core_key_to_diffusers(k): v for k, v in sd.items() if k.split(".")[0] in CORE_PREFIXES}


def diffusers_config(cfg) -> dict:
    return dict(patch_size=tuple(cfg.patch_size), num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
                in_channels=cfg.in_dim, out_channels=cfg.out_dim, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
                ffn_dim=cfg.ffn_dim, num_layers=cfg.num_layers, cross_attn_norm=True,
                qk_norm="rms_norm_across_heads", eps=cfg.eps)
