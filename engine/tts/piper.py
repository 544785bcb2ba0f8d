"""Piper voices: an ONNX VITS model (`<voice>.onnx`) + its config (`<voice>.onnx.json`), phonemised by espeak-ng.

Where they live: the server setting piper_voices (env AVATAR_BRIDGE_PIPER_VOICES), default
`$AVATAR_BRIDGE_MODELS_DIR/piper` (`avatar-bridge models fetch piper:<voice>` downloads there). Every
`<name>.onnx.json` in that folder is the voice `piper:<name>`; the voices in FETCHABLE are listed even when
absent, with the fetch command as their `missing` text (Speak with one -> FAILED_PRECONDITION naming it).

Synthesis follows Piper's own recipe: espeak-ng IPA for the sentence (the config's espeak.voice), each
codepoint -> its ids in phoneme_id_map, "^" first, "_" after every phoneme, "$" last; the model's inputs
`input` (int64 [1, n]), `input_lengths` (int64 [1]), `scales` (float32 [noise_scale, length_scale, noise_w]),
`sid` (int64 [1]) for multi-speaker voices; output 0 is the audio.

Phone timings. A released Piper graph outputs audio only, but inside it the duration predictor's rounded
result `w_ceil` (one Ceil node: frames per phoneme id) decides exactly how many samples each id gets
(frames x hop_length). We mark that tensor as a second graph output in memory when loading (the same patch
Piper's own `piper.patch_voice_with_alignment` writes to disk; needs the `onnx` package), so the mouth
follows the model's own durations: exact, no aligner. Only a graph with no single Ceil tensor (not a VITS
export) falls back to forced alignment of the synthesised audio against the text
(engine/expression/phones/align.py, pocketsphinx, US English only); such a voice in another language is
listed as not usable, because there would be no timings worth the name.
"""
from __future__ import annotations

import json
import os
import pathlib
import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from engine.expression.phones.timing import Phone
from engine.tts.base import Synthesis, TtsBackend, TtsError, Voice, VoiceMissing

VOICES_ENV = "AVATAR_BRIDGE_PIPER_VOICES"
HF_URL = "https://huggingface.co/rhasspy/piper-voices/resolve/v1.0.0/{path}"  # the voices' published layout
BOS, EOS, PAD = "^", "$", "_"
STRESS = set("ˈˌ")
DEFAULT_HOP = 256  # samples per frame of Piper's VITS decoder (configs before hop_length was written use it)
# Voices `models fetch piper:<name>` knows by name (any name of the form lang_REGION-speaker-quality works;
# these are the ones we list). No checksum is published beside the files: the fetch records the sha256 of
# what it downloaded and `models verify` checks against that record.
FETCHABLE = {
    "en_US-lessac-medium": ("en-us", "Piper en_US lessac medium (US English, female, VITS, 22.05 kHz)", 22050),
    "en_GB-alan-medium": ("en-gb", "Piper en_GB alan medium (British English, male, VITS, 22.05 kHz)", 22050),
    "de_DE-thorsten-medium": ("de", "Piper de_DE thorsten medium (German, male, VITS, 22.05 kHz)", 22050),
}
_NAME = re.compile(r"^([a-z]{2,3})_([A-Z]{2})-([A-Za-z0-9_]+)-(x_low|low|medium|high)$")


def voices_dir() -> pathlib.Path:
    env = os.environ.get(VOICES_ENV)
    if env:
        return pathlib.Path(env).expanduser()
    from engine.capture.models import models_dir
    return models_dir() / "piper"


def fetch_command(name: str) -> str:
    return f"avatar-bridge models fetch piper:{name}"


def hf_paths(name: str) -> list[str]:
    """'en_US-lessac-medium' -> the two files' paths in rhasspy/piper-voices. ValueError for another form."""
    m = _NAME.match(name)
    if not m:
        raise ValueError(f"{name!r} is not a Piper voice name (language_REGION-speaker-quality, e.g. "
                         "en_US-lessac-medium)")
    lang, region, speaker, quality = m.groups()
    folder = f"{lang}/{lang}_{region}/{speaker}/{quality}"
    return [f"{folder}/{name}.onnx", f"{folder}/{name}.onnx.json"]


@dataclass
class _Loaded:
    session: object  # onnxruntime.InferenceSession
    config: dict
    durations: bool  # True: output 1 is w_ceil (frames per phoneme id)
    input_names: set


class PiperBackend(TtsBackend):
    name = "piper"

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = pathlib.Path(folder) if folder else voices_dir()
        self._loaded: dict[str, _Loaded] = {}
        self._configs: dict[str, dict] = {}

    # ------------------------------------------------------------------ listing
    def voices(self) -> list[Voice]:
        out = []
        files = [f.name for f in self.folder.iterdir()] if self.folder.is_dir() else []
        # A voice is either of its two files: one without the other is listed, as missing its partner.
        names = sorted({f[:-len(".onnx.json")] for f in files if f.endswith(".onnx.json")}
                       | {f[:-len(".onnx")] for f in files if f.endswith(".onnx")})
        for name in names + [n for n in FETCHABLE if n not in names]:
            lang, desc, rate = FETCHABLE.get(name, ("", f"Piper voice {name}", 22050))
            missing = self._missing(name)
            if not missing:
                cfg = self._configs[name]
                lang = _language(cfg) or lang
                rate = int(cfg["audio"]["sample_rate"])
                desc = FETCHABLE.get(name, ("", f"Piper voice {name} ({lang}, {rate} Hz)", 0))[1]
            out.append(Voice(f"piper:{name}", lang or "und", self.name, rate, desc, missing))
        return out

    def _missing(self, name: str) -> str:
        """'' if the voice's two files are there and its config is readable, else what is wrong + the fix."""
        onnx_path, json_path = self._paths(name)
        fix = f"run `{fetch_command(name)}` or put {name}.onnx and {name}.onnx.json in {self.folder} " \
              "(server setting piper_voices)"
        absent = [p.name for p in (onnx_path, json_path) if not p.is_file()]
        if absent:
            return f"piper voice {name!r}: {' and '.join(absent)} missing in {self.folder}; {fix}"
        try:
            cfg = json.loads(json_path.read_text(encoding="utf-8"))
            problem = _config_problem(cfg)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            problem = f"not readable JSON ({exc})"
        if problem:
            return f"piper voice {name!r}: {json_path} {problem}; {fix}"
        self._configs[name] = cfg
        return ""

    def _paths(self, name: str) -> tuple[pathlib.Path, pathlib.Path]:
        return self.folder / f"{name}.onnx", self.folder / f"{name}.onnx.json"

    # ------------------------------------------------------------------ loading
    def _load(self, name: str) -> _Loaded:
        if name in self._loaded:
            return self._loaded[name]
        missing = self._missing(name)
        if missing:
            raise VoiceMissing(missing)
        try:
            import onnxruntime as ort
        except ImportError:
            raise VoiceMissing("piper voices need onnxruntime: pip install 'avatar-bridge[piper]'") from None
        onnx_path, _ = self._paths(name)
        cfg = self._configs[name]
        model, durations = _with_duration_output(onnx_path)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1  # one worker process per core already
        opts.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise VoiceMissing(f"piper voice {name!r}: {onnx_path} is not a loadable ONNX model "
                               f"({type(exc).__name__}: {str(exc)[:160]}); delete it and run "
                               f"`{fetch_command(name)}`") from None
        inputs = {i.name for i in session.get_inputs()}
        if not {"input", "input_lengths", "scales"} <= inputs:
            raise VoiceMissing(f"piper voice {name!r}: {onnx_path} has inputs {sorted(inputs)}, not Piper's "
                               "input/input_lengths/scales; it is not a Piper voice model")
        if not durations and _language(cfg).split("-")[0] != "en":
            raise VoiceMissing(f"piper voice {name!r}: its model has no duration tensor (no single Ceil node) and "
                               "forced alignment is English only, so its phone timings cannot be known")
        loaded = self._loaded[name] = _Loaded(session, cfg, durations, inputs)
        return loaded

    # ------------------------------------------------------------------ synthesis
    def synth(self, text: str, voice: Voice, rate: float) -> Synthesis:
        name = voice.id.split(":", 1)[1]
        v = self._load(name)
        cfg, warnings = v.config, []
        sr = int(cfg["audio"]["sample_rate"])
        phonemes = phonemize(text, cfg["espeak"]["voice"])
        id_map = cfg["phoneme_id_map"]
        ids, owner, unknown = _phoneme_ids(phonemes, id_map)
        if unknown:
            warnings.append(f"piper voice {name}: phonemes not in its phoneme_id_map were skipped: "
                            f"{' '.join(sorted(unknown))}")
        if not any(o >= 0 and not _is_pause(phonemes[o]) for o in owner):
            return Synthesis(np.zeros(0, np.float32), sr, [], [f"piper said nothing for {text[:60]!r}; a pause "
                                                                "was sent instead"])
        inf = cfg.get("inference", {})
        scales = np.array([inf.get("noise_scale", 0.667), inf.get("length_scale", 1.0) / rate,
                           inf.get("noise_w", 0.8)], np.float32)
        feed = {"input": np.array([ids], np.int64), "input_lengths": np.array([len(ids)], np.int64), "scales": scales}
        if "sid" in v.input_names:
            feed["sid"] = np.array([0], np.int64)  # multi-speaker voices: the first speaker
        try:
            out = v.session.run(None, feed)
        except Exception as exc:
            raise TtsError(f"piper voice {name} failed on {text[:60]!r}: {type(exc).__name__}: {str(exc)[:200]}") \
                from None
        audio = np.asarray(out[0], np.float32).reshape(-1)
        audio = np.clip(audio, -1.0, 1.0)
        if v.durations:
            hop = int(cfg.get("hop_length", DEFAULT_HOP))
            samples = np.rint(np.asarray(out[1], np.float64).reshape(-1) * hop).astype(np.int64)
            if samples.size != len(ids):
                raise TtsError(f"piper voice {name}: its duration tensor has {samples.size} values for "
                               f"{len(ids)} phoneme ids; the model is not a Piper VITS export")
            phones = _phones_from_durations(phonemes, owner, samples, sr)
        else:
            phones = _aligned_phones(audio, sr, text, warnings)
        return Synthesis(audio, sr, phones, warnings)


# ---------------------------------------------------------------------- helpers (also used by the tests)
def _language(cfg: dict) -> str:
    code = (cfg.get("espeak", {}) or {}).get("voice") or (cfg.get("language", {}) or {}).get("code", "")
    return str(code).lower().replace("_", "-")


def _config_problem(cfg) -> str:
    if not isinstance(cfg, dict):
        return "is not a JSON object"
    for key, typ in (("audio", dict), ("espeak", dict), ("phoneme_id_map", dict)):
        if not isinstance(cfg.get(key), typ):
            return f"has no {key!r} object (is it a Piper .onnx.json?)"
    if not isinstance(cfg["audio"].get("sample_rate"), int) or not 8000 <= cfg["audio"]["sample_rate"] <= 96000:
        return "has no audio.sample_rate between 8000 and 96000"
    if not cfg["espeak"].get("voice"):
        return "has no espeak.voice"
    if cfg.get("phoneme_type", "espeak") != "espeak":
        return f"has phoneme_type {cfg.get('phoneme_type')!r}; only espeak-phonemised voices are supported"
    for sym in (BOS, EOS, PAD):
        if sym not in cfg["phoneme_id_map"]:
            return f"has no {sym!r} in phoneme_id_map"
    return ""


def phonemize(text: str, espeak_voice: str) -> list[str]:
    """Text -> Piper's phoneme list: espeak-ng IPA codepoints (NFD), each clause followed by its punctuation
    (engine/tts/espeak.py: ipa)."""
    from engine.tts.espeak import ipa, shared_driver
    try:
        phones = ipa(shared_driver(), text, espeak_voice)
    except RuntimeError as exc:
        raise VoiceMissing(f"piper voices are phonemised by espeak-ng, which cannot start ({exc})") from None
    except ValueError as exc:
        raise VoiceMissing(f"{exc} (the Piper voice's espeak.voice); install espeak-ng-data") from None
    return list(unicodedata.normalize("NFD", phones))


def _phoneme_ids(phonemes: list[str], id_map: dict) -> tuple[list[int], list[int], set]:
    """-> (ids, owner of each id: index into phonemes or -1 for BOS/EOS, phonemes not in the map).
    A PAD after a phoneme belongs to it (its samples are that phoneme's tail)."""
    ids = list(id_map[BOS]) + list(id_map[PAD])
    owner, unknown = [-1] * len(ids), set()
    for i, ph in enumerate(phonemes):
        if ph not in id_map:
            unknown.add(ph)
            continue
        seq = list(id_map[ph]) + list(id_map[PAD])
        ids += seq
        owner += [i] * len(seq)
    ids += list(id_map[EOS])
    owner += [-1] * len(id_map[EOS])
    return ids, owner, unknown


def _is_pause(ph: str) -> bool:
    return ph.isspace() or unicodedata.category(ph)[0] in "PSZ" and ph not in STRESS


def _phones_from_durations(phonemes: list[str], owner: list[int], samples: np.ndarray, sr: int) -> list[Phone]:
    """Samples per phoneme id -> Phones: a stress mark goes with the phone after it, a length mark or
    diacritic with the phone before, spaces and punctuation are pauses (label '')."""
    spans: dict[int, list[int]] = {}
    pos = 0
    lead = 0  # BOS (and its PAD): silence before the first phoneme
    for o, n in zip(owner, samples.tolist()):
        if o < 0:
            if not spans:
                lead += n
        else:
            s = spans.setdefault(o, [pos, pos])
            s[1] = pos + n
        pos += n
    out: list[list] = [[0, lead, ""]] if lead else []
    pending = None  # a stress mark's start: the next phone begins there
    for i in sorted(spans):
        s, e = spans[i]
        ph = phonemes[i]
        if ph in STRESS:
            pending = s if pending is None else pending
            continue
        if _is_pause(ph):
            label = ""
        elif unicodedata.combining(ph) or unicodedata.category(ph) == "Lm":
            if out and out[-1][2]:
                out[-1][1] = e
                out[-1][2] += ph
                continue
            label = ""
        else:
            label = ph
        start = pending if pending is not None and label else s
        pending = None if label else pending
        if out and out[-1][2] == "" and label == "":
            out[-1][1] = e
        else:
            out.append([start, e, label])
    return [Phone(s / sr, e / sr, label) for s, e, label in out if e > s]


def _aligned_phones(audio: np.ndarray, sr: int, text: str, warnings: list[str]) -> list[Phone]:
    """A graph without its duration tensor: force-align the audio to the text (US English, pocketsphinx)."""
    from engine.audio import resample
    from engine.expression.phones.align import SAMPLE_RATE, AlignmentError, align
    try:
        al = align(resample(audio, sr, SAMPLE_RATE), text, check=False)
    except AlignmentError as exc:
        raise TtsError(f"the piper voice's audio could not be aligned to its text ({exc})") from None
    msg = "piper voice without a duration tensor: phone timings from forced alignment of its audio"
    if msg not in warnings:
        warnings.append(msg)
    return [Phone(p.start_s, p.end_s, "" if p.label.upper() in ("SIL", "SP", "+NSN+") else p.label)
            for p in al.phones]


def _with_duration_output(path: pathlib.Path) -> tuple[bytes | str, bool]:
    """(model bytes or path, True if output 1 is w_ceil). Marks the graph's single Ceil tensor as a second
    output (Piper's alignment patch) when the graph has one and it is not already an output."""
    try:
        import onnx
    except ImportError:
        return str(path), False
    try:
        model = onnx.load(str(path))
    except Exception:
        return str(path), False  # onnxruntime then names what is wrong with the file
    if len(model.graph.output) > 1:
        return model.SerializeToString(), True  # already patched (piper.patch_voice_with_alignment)
    ceil = {out for node in model.graph.node if node.op_type == "Ceil" for out in node.output}
    if len(ceil) != 1:
        return model.SerializeToString(), False
    info = onnx.ValueInfoProto()
    info.name = next(iter(ceil))
    model.graph.output.append(info)
    return model.SerializeToString(), True


# ---------------------------------------------------------------------- `avatar-bridge models fetch piper:<name>`
CHECKSUMS = "CHECKSUMS.sha256"


def fetch_voice(name: str, dest: pathlib.Path | None = None, base_url: str | None = None) -> list[pathlib.Path]:
    """Download <name>.onnx and .onnx.json (Hugging Face rhasspy/piper-voices layout under base_url, default
    HF_URL) into dest (default voices_dir()), each through a temporary file moved into place only when
    complete; record their sha256 in dest/CHECKSUMS.sha256 (no checksum is published to pin them to). The
    config is checked before the model is downloaded. ValueError for a bad name, OSError for a failed
    download."""
    import tempfile
    import urllib.request

    from engine.capture.models import sha256_of

    dest = dest or voices_dir()
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for rel in reversed(hf_paths(name)):  # the small .onnx.json first: a bad one stops before ~60 MB
        url = (base_url.rstrip("/") + "/" + rel) if base_url else HF_URL.format(path=rel)
        target = dest / rel.rsplit("/", 1)[1]
        fd, tmp = tempfile.mkstemp(dir=dest, prefix=target.name + ".")
        try:
            with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=60) as resp:
                while block := resp.read(1 << 20):
                    fh.write(block)
            if target.name.endswith(".json"):
                try:
                    problem = _config_problem(json.loads(pathlib.Path(tmp).read_text(encoding="utf-8")))
                except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                    problem = f"is not JSON ({exc})"
                if problem:
                    raise OSError(f"{url} {problem}")
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        out.append(target)
    sums = read_checksums(dest)
    sums.update({p.name: sha256_of(p) for p in out})
    (dest / CHECKSUMS).write_text("".join(f"{h}  {f}\n" for f, h in sorted(sums.items())), encoding="utf-8")
    return list(reversed(out))


def read_checksums(folder: pathlib.Path) -> dict[str, str]:
    path = folder / CHECKSUMS
    if not path.is_file():
        return {}
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[1]] = parts[0]
    return out


def verify_voice(name: str, folder: pathlib.Path | None = None) -> list[str]:
    """Problems with an installed voice's files ([] = fine): missing, or differing from the recorded sha256."""
    from engine.capture.models import sha256_of

    folder = folder or voices_dir()
    sums = read_checksums(folder)
    out = []
    for f in (f"{name}.onnx", f"{name}.onnx.json"):
        p = folder / f
        if not p.is_file():
            out.append(f"{f} missing")
        elif f in sums and sha256_of(p) != sums[f]:
            out.append(f"{f} differs from the sha256 recorded when it was fetched")
    return out
