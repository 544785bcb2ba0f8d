"""One handler module per RPC family. Each validates its requests, opens a worker stream and hands the worker's
events to the one forwarding loop (forward.py); none of them computes."""
