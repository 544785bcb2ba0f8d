"""Phone-level input for the mouth: ARPAbet/IPA -> visemes (arpabet), phone timings -> a 10 ms mouth
track with coarticulation (timing), and forced alignment of a known transcript to audio (align).

timing and arpabet import no recogniser, so a TTS or training code can use them without pocketsphinx.
"""
