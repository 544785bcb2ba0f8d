"""Talking video on several ranks: timestep-pipeline parallel (TPP) for the LiveAvatar causal mode and
Ulysses sequence parallel (all-to-all on heads) for the S2V offline mode and inside a TPP stage.
See docs/multi_gpu.md."""
