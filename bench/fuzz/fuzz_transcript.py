"""Fuzz transcript text handling (engine/expression/phones/align.py normalise + pronounceable), as
AnimateClip's transcript reaches the aligner. The pocketsphinx decode itself is not fuzzed (seconds per
input).

Input: the transcript bytes, decoded as UTF-8 with replacement (the proto's string field is UTF-8).
pronounceable() asks espeak-ng for words the dictionary lacks; here espeak_arpabet is replaced by a stand-in
that returns a phone string derived from the word (valid ARPAbet, junk, or nothing), so each input costs
microseconds instead of an espeak-ng process per word, and pocketsphinx's add_word sees odd words and phones.

Clean: neither function raises at all (a word without a pronunciation is dropped with a warning). Checked:
words are lowercase non-empty strings without spaces, pronounceable returns a subsequence of its input,
one warning per dropped word.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from bench.fuzz import harness  # noqa: E402

import atheris  # noqa: E402

with atheris.instrument_imports(include=["engine.expression.phones.align"]):
    from engine.expression.phones import align

PHONES = ("AA", "AE", "AH", "B", "D", "EH", "HH", "IY", "K", "L", "M", "N", "OW", "S", "T", "UW", "Z")


def fake_espeak(word: str) -> list[str]:
    h = sum(map(ord, word))
    if h % 5 == 0:
        return []  # espeak-ng missing or failed
    if h % 5 == 1:
        return ["XX", word[:3].upper() or "Q"]  # phones the acoustic model lacks
    return [PHONES[(h >> i) % len(PHONES)] for i in range(1 + h % 4)]


align.espeak_arpabet = fake_espeak
align.decoder()  # load the model once (~0.4 s), before the timed inputs


def one_input(data: bytes) -> None:
    text = data.decode("utf-8", "replace")
    words = align.normalise(text)
    assert all(isinstance(w, str) and w and w == w.lower() and not any(c.isspace() for c in w) for w in words)
    warnings: list[str] = []
    kept = align.pronounceable(words, warnings)
    it = iter(words)
    assert all(any(k == w for w in it) for k in kept), "pronounceable reordered or invented words"
    assert len(warnings) == len(words) - len(kept)


if __name__ == "__main__":
    harness.main("transcript", one_input, max_len=16384)
