"""A tiny voice made here in Piper's exact ONNX layout, to test the Piper backend on a real model file.

It is NOT a real Piper voice (no neural network was trained): a torch module exported with
torch.onnx.export under Piper's input/output names, dtypes and dynamic axes — `input` int64 [1, n],
`input_lengths` int64 [1], `scales` float32 [3] -> `output` float32 [1, 1, samples] — with a duration
predictor whose rounded result is one Ceil node, as in Piper's VITS graphs (frames per phoneme id, times
length_scale; samples = frames x hop 256). Each phoneme id's "decoder" tiles a snippet of espeak-ng speech of
that phone, so the audio is real speech sounds in the order and for the durations the model itself decided.
Its .onnx.json is a real Piper config: audio.sample_rate, espeak.voice, inference scales, and a
phoneme_id_map built from the IPA codepoints espeak-ng produces for English.

Needs torch and onnx (the `test` extra); used by tests/test_piper_voice.py, which writes it to a tmp folder.
"""
from __future__ import annotations

import json
import pathlib
import unicodedata
import warnings

import numpy as np

SAMPLE_RATE = 22050  # espeak-ng's own rate: its snippets need no resampling
HOP = 256
SNIP = 2048  # samples per phoneme snippet (93 ms), tiled for longer phones
TEXTS = ["The quick brown fox jumps over the lazy dog.", "Hello there, how are you today?",
         "She sells sea shells by the sea shore.", "Pack my box with five dozen liquor jugs.",
         "Thank you very much, that was a good measure of the thing.", "Who would choose a zebra or a yacht?"]
VOWELS = set("aeiouyæɐɑɒɔəɚɛɜɝɪʊʌᵻɨ")


def build(folder: pathlib.Path, name: str = "en_US-tiny-medium", ceil: bool = True, length_scale: float = 1.0,
          speakers: int = 1) -> pathlib.Path:
    """Write <folder>/<name>.onnx and .onnx.json; ceil=False rounds durations without a Ceil node (a graph
    that gives no duration tensor); speakers > 1 adds Piper's `sid` input (speaker k's audio is scaled by
    1 / (1 + k)). Returns the .onnx path."""
    import torch

    from engine.tts.espeak import ipa, shared_driver

    es = shared_driver()
    chars = set()
    for t in TEXTS:
        chars |= set(unicodedata.normalize("NFD", ipa(es, t, "en-us")))
    chars -= set(" _^$.,?!;:")
    id_map = {"_": [0], "^": [1], "$": [2], " ": [3]}
    for c in ".,?!;:":
        id_map[c] = [len(id_map)]
    for c in sorted(chars):
        id_map[c] = [len(id_map)]
    n_ids = len(id_map)

    # Snippets: the first espeak-ng phone event whose label starts with the codepoint.
    table = np.zeros((n_ids, SNIP), np.float32)
    done = set()
    for t in TEXTS:
        x, events = es.synth(t, "en-us")
        for k, (s, label) in enumerate(events):
            e = events[k + 1][0] if k + 1 < len(events) else x.size
            c = unicodedata.normalize("NFD", label)[:1]
            if c in id_map and c not in done and e - s > 200:
                seg = x[s:e]
                table[id_map[c][0]] = np.resize(seg, SNIP)  # tiled
                done.add(c)
    dur = np.zeros(n_ids, np.float32)  # frames per id at length_scale 1
    for c, (i,) in id_map.items():
        if c in VOWELS:
            dur[i] = 7.3
        elif c == " ":
            dur[i] = 1.2
        elif c in ".,?!;:":
            dur[i] = 9.6
        elif c in done and unicodedata.category(c) != "Lm":
            dur[i] = 4.4
    torch_model = _TinyPiper(torch.from_numpy(dur), torch.from_numpy(table), ceil, speakers > 1)
    path = folder / f"{name}.onnx"
    folder.mkdir(parents=True, exist_ok=True)
    ids = torch.tensor([[1, 0, id_map["h"][0], 0, id_map["ə"][0], 0, 2]], dtype=torch.long)
    with warnings.catch_warnings():  # torch says the TorchScript exporter is legacy: it is the one that
        warnings.simplefilter("ignore")  # runs without onnxscript, and Piper's own export uses it
        args = (ids, torch.tensor([ids.shape[1]]), torch.tensor([0.667, 1.0, 0.8]))
        names = ["input", "input_lengths", "scales"]
        axes = {"input": {0: "batch_size", 1: "phonemes"}, "input_lengths": {0: "batch_size"},
                "output": {0: "batch_size", 2: "time"}}
        if speakers > 1:
            args, names, axes["sid"] = args + (torch.tensor([0]),), names + ["sid"], {0: "batch_size"}
        torch.onnx.export(torch_model, args, str(path), input_names=names, output_names=["output"],
                          dynamic_axes=axes, opset_version=17, dynamo=False)
    config = {"audio": {"sample_rate": SAMPLE_RATE, "quality": "medium"}, "espeak": {"voice": "en-us"},
              "language": {"code": "en_US"},
              "inference": {"noise_scale": 0.667, "length_scale": length_scale, "noise_w": 0.8},
              "phoneme_type": "espeak", "phoneme_map": {}, "phoneme_id_map": id_map, "num_symbols": n_ids,
              "num_speakers": speakers,
              "speaker_id_map": {f"speaker{k}": k for k in range(speakers)} if speakers > 1 else {}, "hop_length": HOP,
              "dataset": "made here by tests/piper_tiny.py: not a trained voice"}
    (folder / f"{name}.onnx.json").write_text(json.dumps(config, ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def _TinyPiper(dur, table, ceil: bool, multi: bool):
    import torch

    class TinyPiper(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("dur", dur)
            self.register_buffer("table", table)

        def forward(self, input, input_lengths, scales, sid=None):
            n = input.shape[1]
            mask = (torch.arange(n) < input_lengths[0]).float()
            # noise_w and noise_scale are taken (the graph keeps Piper's three scales) but change nothing:
            # this model is deterministic.
            w = self.dur[input[0]] * scales[1] * mask + 0.0 * scales[2]
            w_ceil = torch.ceil(w) if ceil else torch.floor(w + 0.5)
            frames = w_ceil.long()
            ends = torch.cumsum(frames, 0)
            starts = ends - frames
            fr = torch.arange(ends[-1])
            phone_of_frame = (fr.unsqueeze(1) >= ends.unsqueeze(0)).long().sum(1)
            s = torch.arange(ends[-1] * HOP)
            idx = phone_of_frame[s // HOP]
            off = (s - starts[idx] * HOP) % SNIP
            audio = self.table.reshape(-1)[input[0][idx] * SNIP + off] * (0.8 + 0.0 * scales[0])
            if multi:
                audio = audio / (1.0 + sid[0].float())
            return audio.reshape(1, 1, -1)

    return TinyPiper()
