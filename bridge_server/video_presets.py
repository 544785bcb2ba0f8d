"""Named sets of video knobs, shared by `avatar-bridge generate --preset` and the web console's video form.
Imports nothing, so the console can use them without loading the CLI or any engine code."""

# Presets built from the settings of Wan2.2-S2V's and LiveAvatar's shipped inference scripts (steps, frames per
# clip, solver, guidance, shift); their README tables of recommended settings were not available here.
PRESETS = {
    "preview": dict(model="liveavatar", size="704*384", infer_frames=48, sample_steps=3, num_clip=1),
    "standard": dict(model="liveavatar", size="704*384", infer_frames=48, sample_steps=4),
    "long": dict(model="liveavatar", size="704*384", infer_frames=48, sample_steps=4, enable_online_decode=True,
                 offload_model=True),
    "hd": dict(model="s2v", size="1024*704", infer_frames=80, sample_steps=40, sample_guide_scale=4.5,
               sample_shift=3.0, sample_solver="unipc"),
}
