"""`avatar-bridge console`: a web console on http://127.0.0.1:8080 (docs/console.md).

An HTTP + WebSocket process that is a gRPC *client* of the bridge server: it relays uploads to AnimateClip, Speak,
StreamExpression and GenerateVideo and serves the built front end from ``static/``. It never computes animation
itself and imports no engine module.
"""
