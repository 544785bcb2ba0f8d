"""Talking-video engine: Wan2.2-S2V-14B DiT (offline clips) and LiveAvatar causal streaming, loading the
released checkpoints (docs/video.md). Heavy imports (torch, diffusers, transformers) stay inside the modules."""
