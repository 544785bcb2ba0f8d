"""Capture: images / video -> canonical frames with MediaPipe Face Landmarker (docs/capture.md)."""
from engine.capture.landmarker import UNMEASURED, CaptureFrame, CaptureSettings, FaceCapture, lip_aperture
from engine.capture.models import FACE_LANDMARKER, ModelMissing, locate
from engine.capture.video import VideoCapture, VideoError, VideoReader, capture_video_file

__all__ = ["UNMEASURED", "CaptureFrame", "CaptureSettings", "FaceCapture", "lip_aperture", "FACE_LANDMARKER",
           "ModelMissing", "locate", "VideoCapture", "VideoError", "VideoReader", "capture_video_file"]
