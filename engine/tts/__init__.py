"""Text -> speech with phone timings (the Speak RPC). Backends: espeak.py, festival.py; registry.py picks."""
