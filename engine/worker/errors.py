"""The one mapping from an exception in a worker to the status that ends its stream (a gRPC code name).

Bad input is the client's (INVALID_ARGUMENT), a missing model or voice the operator's (FAILED_PRECONDITION),
anything else a bug of ours (INTERNAL, logged with its traceback). The worker goes on serving in every case.
"""
from __future__ import annotations

import logging
import traceback

from engine.audio import AudioError
from engine.capture.images import ImageError
from engine.capture.models import ModelMissing
from engine.capture.video import VideoError
from engine.tts.base import TtsError, VoiceMissing
from engine.worker.specs import ErrorReply

log = logging.getLogger("engine.worker")


def error_reply(exc: Exception, sid: int) -> ErrorReply:
    if isinstance(exc, (AudioError, ImageError, VideoError)):
        return ErrorReply(code="INVALID_ARGUMENT", message=str(exc))
    if isinstance(exc, (ModelMissing, VoiceMissing)):
        return ErrorReply(code="FAILED_PRECONDITION", message=str(exc))
    if isinstance(exc, TtsError):
        return ErrorReply(code="INTERNAL", message=f"speech synthesis failed: {exc}")
    log.error("stream %d failed: %s", sid, "".join(traceback.format_exception(exc)))
    return ErrorReply(code="INTERNAL", message=f"engine error: {type(exc).__name__}: {exc}")
