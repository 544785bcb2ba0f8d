"""Festival voices (Debian festival + festvox-*): a more natural US-English female voice (HTS) and a diphone one.

Festival is started on a worker's first Festival sentence (~0.25 s; `prewarm` can do it ahead), stopped after
IDLE_S unused (the HTS voice holds ~320 MB), and kept running in between (one process per worker, behind a pseudo-terminal so its output is line-buffered:
through a pipe it only flushes at exit); each sentence costs only its synthesis, not Festival's ~0.25 s
start-up. After utt.synth the utterance's Segment relation holds every phone with its end time, so the phone
timings are Festival's own (utt.save.segs), not aligned afterwards. Phone names are Festival's US "radio"
set (ARPAbet in lower case, pau for silence), which timing.py reads as ARPAbet.
"""
from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import tempfile
import termios
import time

import soundfile as sf

from engine.tts.base import Synthesis, TtsBackend, TtsError, Voice, VoiceMissing, phones_from_starts

VOICE_ROOT = "/usr/share/festival/voices"
# name -> (festival voice function, voice folder under VOICE_ROOT, language, Debian package, sample rate, description)
VOICES = {
    "us-slt-hts": ("voice_cmu_us_slt_arctic_hts", "us/cmu_us_slt_arctic_hts", "en-us", "festvox-us-slt-hts", 32000,
                   "Festival HTS, CMU Arctic SLT (US English, female, statistical parametric)"),
    "kal": ("voice_kal_diphone", "english/kal_diphone", "en-us", "festvox-kallpc16k", 16000,
            "Festival diphone, KAL (US English, male, LPC diphones)"),
}
TIMEOUT_S = 30.0
# Right after an HTS voice loads: keep its HTS engine parameters, which every sentence extends with its rate.
SNAPSHOT = "(set! ab_hts_base hts_engine_params)"
IDLE_S = 300.0


class FestivalBackend(TtsBackend):
    name = "festival"
    voice_root = VOICE_ROOT
    voice_table = VOICES

    def __init__(self):
        self._proc = None
        self._fd = -1
        self._buf = b""
        self._loaded = ""
        self._n = 0
        self._tmp = tempfile.mkdtemp(prefix="ab-festival-")
        self._pending = b""  # the tag of a command sent by prewarm(), not yet answered
        self._used = 0.0  # last command (idle())

    def prewarm(self, name: str = "us-slt-hts") -> None:
        """Start Festival and load a voice without waiting (~0.25 s), so a worker's first sentence does not pay it."""
        if name not in self.voice_table:
            return
        fn, folder, _, package, _, _ = self.voice_table[name]
        if self._missing(name, folder, package) or self._proc is not None:
            return
        self._start()
        self._used = time.monotonic()
        self._n += 1
        self._pending = f"@@ab-done-{self._n}@@".encode()
        self._proc.stdin.write(f"({fn}){_snapshot(fn)}".encode() + b'\n(format t "' + self._pending + b'\\n")\n')
        self._proc.stdin.flush()
        self._loaded = fn

    def voices(self) -> list[Voice]:
        out = []
        for name, (_, folder, lang, package, rate, desc) in self.voice_table.items():
            out.append(Voice(f"{self.name}:{name}", lang, self.name, rate, desc,
                             self._missing(name, folder, package)))
        return out

    def _missing(self, name: str, folder: str, package: str) -> str:
        if shutil.which("festival") is None:
            return "the festival program is not installed; apt-get install festival " + package
        path = os.path.join(self.voice_root, folder)
        if not os.path.isdir(path):
            return f"festival voice {name!r}: its files are missing ({path}); apt-get install {package}"
        return ""

    def synth(self, text: str, voice: Voice, rate: float) -> Synthesis:
        name = voice.id.split(":", 1)[1]
        fn, folder, _, package, rate_hz, _ = self.voice_table[name]
        missing = self._missing(name, folder, package)
        if missing:
            raise VoiceMissing(missing)
        if self._loaded != fn:
            self._cmd(f"({fn}){_snapshot(fn)}", f"loading {name}")
            self._loaded = fn
        wav, segs = os.path.join(self._tmp, "s.wav"), os.path.join(self._tmp, "s.segs")
        for f in (wav, segs):
            if os.path.exists(f):
                os.remove(f)
        self._cmd(_rate_scheme(fn, rate) +
                  f"(set! abu (utt.synth (Utterance Text \"{_scheme_string(text)}\")))"
                  f"(utt.save.wave abu \"{wav}\" 'riff)(utt.save.segs abu \"{segs}\")", "synthesising")
        if not os.path.exists(wav):
            raise TtsError(f"festival made no audio for {text[:60]!r}")
        x, sr = sf.read(wav, dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        if sr != rate_hz:
            raise TtsError(f"festival voice {name!r} made {sr} Hz audio, not the {rate_hz} Hz it announces")
        phones, t = [], 0.0
        with open(segs) as fh:
            for line in fh:
                parts = line.split()
                if len(parts) != 3 or parts[0] == "#":
                    continue
                end, label = float(parts[0]), parts[2]
                phones.append((t, "" if label in ("pau", "h#", "#") else label))
                t = end
        return Synthesis(x, sr, phones_from_starts(phones, max(t, x.size / sr)))

    # ---------------------------------------------------------------- the Festival process
    def _start(self) -> None:
        master, slave = pty.openpty()
        attrs = termios.tcgetattr(slave)
        attrs[3] &= ~termios.ECHO  # our commands must not come back as output
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self._proc = subprocess.Popen(["festival", "--pipe"], stdin=subprocess.PIPE, stdout=slave, stderr=slave,
                                      close_fds=True, start_new_session=True)
        os.close(slave)
        self._fd, self._buf, self._loaded = master, b"", ""

    def _cmd(self, scheme: str, what: str) -> str:
        self._used = time.monotonic()
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        if self._pending:
            self._read_until(self._pending, "loading a voice")
            self._pending = b""
        self._n += 1
        tag = f"@@ab-done-{self._n}@@".encode()
        try:
            self._proc.stdin.write(scheme.encode() + b'\n(format t "' + tag + b'\\n")\n')
            self._proc.stdin.flush()
        except OSError as exc:
            self.close()
            raise TtsError(f"festival exited while {what}: {exc}") from None
        out = self._read_until(tag, what)
        text = out.decode("utf-8", "replace")
        if "SIOD ERROR" in text:
            raise TtsError(f"festival failed while {what}: {text.strip()[-200:]}")
        return text

    def _read_until(self, tag: bytes, what: str) -> bytes:
        try:
            while tag not in self._buf:
                ready, _, _ = select.select([self._fd], [], [], TIMEOUT_S)
                if not ready:
                    raise TtsError(f"festival did not answer within {TIMEOUT_S:g} s while {what}")
                self._buf += os.read(self._fd, 65536)
        except OSError as exc:
            self.close()
            raise TtsError(f"festival exited while {what}: {exc}") from None
        out, _, self._buf = self._buf.partition(tag)
        return out

    def idle(self, now: float) -> None:
        """Called every second or so: a Festival unused for IDLE_S exits (the HTS voice holds ~320 MB)."""
        if self._proc is not None and now - self._used > IDLE_S:
            self._stop()

    def _stop(self) -> None:
        if self._proc is not None:
            if self._proc.poll() is None:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._pending, self._loaded, self._buf = b"", "", b""

    def close(self) -> None:
        self._stop()
        shutil.rmtree(self._tmp, ignore_errors=True)


def _snapshot(fn: str) -> str:
    return SNAPSHOT if fn.endswith("_hts") else ""  # only an HTS voice defines hts_engine_params


def _rate_scheme(fn: str, rate: float) -> str:
    """The Scheme that sets the speaking rate for the next utterance.

    Diphone / cluster-unit voices: Duration_Stretch (> 1 slower) scales Festival's own segment durations.
    HTS voices take their durations from the HTS engine's duration model and ignore Duration_Stretch; the
    engine's speech speed option "-r" (> 1 faster) is what stretches them, and Festival writes the durations
    the engine used back into the segments, so utt.save.segs stays on the audio's clock. The parameters the
    voice set when it loaded (SNAPSHOT) are re-extended on every sentence, so rates never accumulate."""
    if fn.endswith("_hts"):
        return (f"(set! hts_engine_params (append ab_hts_base (list (list \"-r\" {rate:.4f}))))"
                "(Parameter.set 'Duration_Stretch 1.0)")
    return f"(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})"


def _scheme_string(text: str) -> str:
    """Text inside a Scheme string literal: backslash and double quote escaped; line breaks as spaces."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ").replace("\r", " ")
