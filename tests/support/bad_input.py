"""The bad-input tables: each wrong request with the error code and parameter its contract answers with.
unit/test_validation_errors.py sends every case to the app in process; e2e/test_server_errors.py and
e2e/test_server_runcomfy.py send a few of them through a real server, so the wire path stays covered."""

from __future__ import annotations

import base64
import io
import uuid

from PIL import Image

U = "6f1c3e2a-1b2c-4d5e-8f90-123456789abc"
SEED_PROMPT = (
    "A photorealistic portrait of a stylish young woman sitting at an outdoor Parisian café with red woven bistro "
    "chairs and circular white tables."
)
PNG = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGNgYGAAAAAEAAH2FzhVAAAAAElFTkSuQmCC"
"""A real 1x1 PNG."""


def huge_png() -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (5000, 4000), (0, 0, 0)).save(buffer, format="PNG")  # 20 Mpixel, a few KB compressed
    return base64.b64encode(buffer.getvalue()).decode()


def fast(**fields):
    task = {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "lightricks:2@1",
            "positivePrompt": "a cat on a boat", "width": 1920, "height": 1080, "duration": 6, "fps": 25}
    task.update(fields)
    return {key: value for key, value in task.items() if value is not DROP}


def ltx23(**fields):
    return fast(model="lightricks:ltx@2.3", **fields)


def ltx23_fast(**fields):
    return fast(model="lightricks:ltx@2.3-fast", **fields)


def ltx2(**fields):
    return fast(model="lightricks:ltx@2", **fields)


DROP = object()

# (name, task, expected code, expected parameter)
VIDEO_CASES = [
    ("missing taskUUID", fast(taskUUID=DROP), "missingTaskUUID", "taskUUID"),
    ("taskUUID not a uuid", fast(taskUUID="abc"), "invalidTaskUUID", "taskUUID"),
    ("missing model", fast(model=DROP), "missingModel", "model"),
    ("unknown model", fast(model="lightricks:9@9"), "invalidModel", "model"),
    ("model not a string", fast(model=21), "invalidModel", "model"),
    ("missing prompt", fast(positivePrompt=DROP), "missingPositivePrompt", "positivePrompt"),
    ("prompt too short", fast(positivePrompt="a"), "invalidPositivePrompt", "positivePrompt"),
    ("prompt too long", fast(positivePrompt="a" * 10001), "invalidPositivePrompt", "positivePrompt"),
    ("prompt not a string", fast(positivePrompt=123), "invalidPositivePrompt", "positivePrompt"),
    ("width without height", fast(height=DROP), "missingHeight", "height"),
    ("height without width", fast(width=DROP), "missingWidth", "width"),
    ("width a string", fast(width="1920"), "invalidWidth", "width"),
    ("size not offered", fast(width=1280, height=720), "unsupportedDimensions", "width"),
    ("portrait on Fast", fast(width=1080, height=1920), "unsupportedDimensions", "width"),
    ("duration not offered", fast(duration=7), "invalidDuration", "duration"),
    ("duration a string", fast(duration="6"), "invalidDuration", "duration"),
    ("fps not offered", fast(fps=30), "invalidFps", "fps"),
    ("24 fps on Fast", fast(fps=24), "invalidFps", "fps"),
    ("fps a float", fast(fps=25.5), "invalidFps", "fps"),
    ("numberResults 0", fast(numberResults=0), "invalidNumberResults", "numberResults"),
    ("numberResults 5", fast(numberResults=5), "invalidNumberResults", "numberResults"),
    ("numberResults a boolean", fast(numberResults=True), "invalidNumberResults", "numberResults"),
    ("outputType base64", fast(outputType="base64Data"), "invalidOutputType", "outputType"),
    ("outputFormat GIF", fast(outputFormat="GIF"), "invalidOutputFormat", "outputFormat"),
    ("outputQuality 19", fast(outputQuality=19), "invalidOutputQuality", "outputQuality"),
    ("outputQuality 100", fast(outputQuality=100), "invalidOutputQuality", "outputQuality"),
    ("ttl under 60", fast(ttl=59), "invalidTtl", "ttl"),
    ("stream delivery", fast(deliveryMethod="stream"), "invalidDeliveryMethod", "deliveryMethod"),
    ("webhook not http", fast(webhookURL="ftp://example.com/hook"), "invalidWebhookURL", "webhookURL"),
    ("upload not a url", fast(uploadEndpoint="not a url"), "invalidUploadEndpoint", "uploadEndpoint"),
    ("includeCost a string", fast(includeCost="yes"), "invalidIncludeCost", "includeCost"),
    ("safety.checkContent a string", fast(safety={"checkContent": "x"}), "invalidCheckContent", "safety.checkContent"),
    ("safety.mode unknown", fast(safety={"mode": "extreme"}), "invalidMode", "safety.mode"),
    ("safety unknown key", fast(safety={"level": 3}), "unsupportedParameter", "safety.level"),
    ("unknown parameter", fast(CFGScale=3), "unsupportedParameter", "CFGScale"),
    ("top-level frameImages", fast(frameImages=["abc"]), "unsupportedParameter", "frameImages"),
    ("settings on Fast", fast(settings={"audio": True}), "unsupportedParameter", "settings"),
    ("providerSettings on 2.3", ltx23(providerSettings={"lightricks": {"generateAudio": True}}), "unsupportedParameter", "providerSettings"),
    ("providerSettings not an object", fast(providerSettings="x"), "invalidProviderSettings", "providerSettings"),
    ("generateAudio a string", fast(providerSettings={"lightricks": {"generateAudio": "yes"}}), "invalidGenerateAudio", "providerSettings.lightricks.generateAudio"),
    ("unknown lightricks setting", fast(providerSettings={"lightricks": {"loop": True}}), "unsupportedParameter", "providerSettings.lightricks.loop"),
    ("other provider", fast(providerSettings={"google": {}}), "unsupportedParameter", "providerSettings.google"),
    ("settings.audio a string", ltx23(settings={"audio": "no"}), "invalidAudio", "settings.audio"),
    ("2.3 with neither size nor image", ltx23(width=DROP, height=DROP), "missingWidth", "width"),
    ("two images for the first frame", fast(inputs={"frameImages": ["a", "b"]}), "invalidFrameImages", "inputs.frameImages"),
    ("frameImages not a list", fast(inputs={"frameImages": "abc"}), "invalidFrameImages", "inputs.frameImages"),
    ("frameImages empty", fast(inputs={"frameImages": []}), "invalidFrameImages", "inputs.frameImages"),
    ("empty frame image", fast(inputs={"frameImages": [""]}), "invalidFrameImages", "inputs.frameImages"),
    # issue 21: keyframes (6 s at 25 fps: frames 0 to 149, at most 20 images: one per latent frame)
    ("last and 149 are one frame", fast(inputs={"frameImages": [{"image": "a", "frame": "last"}, {"image": "b", "frame": 149}]}), "invalidFrameImages", "inputs.frameImages"),
    ("frame past the clip", fast(inputs={"frameImages": [{"image": "a", "frame": 150}]}), "invalidFrameImages", "inputs.frameImages"),
    ("frame negative", fast(inputs={"frameImages": [{"image": "a", "frame": -1}]}), "invalidFrameImages", "inputs.frameImages"),
    ("frame a float", fast(inputs={"frameImages": [{"image": "a", "frame": 1.5}]}), "invalidFrameImages", "inputs.frameImages"),
    ("frame a boolean", fast(inputs={"frameImages": [{"image": "a", "frame": True}]}), "invalidFrameImages", "inputs.frameImages"),
    ("frame a word", fast(inputs={"frameImages": [{"image": "a", "frame": "middle"}]}), "invalidFrameImages", "inputs.frameImages"),
    ("21 frame images", fast(inputs={"frameImages": [{"image": "a", "frame": i} for i in range(21)]}), "invalidFrameImages", "inputs.frameImages"),
    ("an unreadable second image", fast(inputs={"frameImages": [{"image": PNG, "frame": 0}, {"image": "data:image/png;base64,AAAA", "frame": "last"}]}), "invalidFrameImages", "inputs.frameImages"),
    ("an unknown frame image key", fast(inputs={"frameImages": [{"image": "a", "frame": 0, "strength": 0.5}]}), "unsupportedParameter", "inputs.frameImages[0].strength"),
    ("unknown input", fast(inputs={"video": "abc"}), "unsupportedParameter", "inputs.video"),
    # issue 21: inputs.audio (audio-to-video), on the guided models only
    ("audio on Fast", fast(inputs={"audio": "UklGRg=="}), "unsupportedParameter", "inputs.audio"),
    ("audio on 2.3 Fast", ltx23_fast(inputs={"audio": "UklGRg=="}), "unsupportedParameter", "inputs.audio"),
    ("audio not a string", ltx23(inputs={"audio": {"url": "x"}}), "invalidAudio", "inputs.audio"),
    ("audio empty", ltx23(inputs={"audio": " "}), "invalidAudio", "inputs.audio"),
    ("audio by an uploaded id", ltx23(inputs={"audio": "5b0a4e7c-3d1e-4f2a-9c8b-7a6d5e4f3c2b"}), "unsupportedParameter", "inputs.audio"),
    ("audio URL unsplittable", ltx2(inputs={"audio": "http://[::1/a.wav"}), "invalidAudio", "inputs.audio"),
    ("audio with the audio off", ltx23(inputs={"audio": "UklGRg=="}, settings={"audio": False}), "invalidAudio", "inputs.audio"),
    ("unreadable audio data", ltx23(inputs={"audio": "UklGRg=="}), "invalidAudio", "inputs.audio"),
    ("negative seed", fast(seed=-1), "invalidSeed", "seed"),
    ("seed a string", fast(seed="42"), "invalidSeed", "seed"),
    # issue 21: the guided parameters, on the models that take them and on those that do not
    ("steps on 2.3 Fast", ltx23_fast(steps=8), "unsupportedParameter", "steps"),
    ("negativePrompt on Fast", fast(negativePrompt="fog"), "unsupportedParameter", "negativePrompt"),
    ("steps 1", ltx23(steps=1), "invalidSteps", "steps"),
    ("steps 101", ltx2(steps=101), "invalidSteps", "steps"),
    ("steps a float", ltx23(steps=20.5), "invalidSteps", "steps"),
    ("steps a boolean", ltx2(steps=True), "invalidSteps", "steps"),
    ("CFGScale 0.5", ltx23(CFGScale=0.5), "invalidCFGScale", "CFGScale"),
    ("CFGScale 21", ltx2(CFGScale=21), "invalidCFGScale", "CFGScale"),
    ("CFGScale a string", ltx23(CFGScale="3"), "invalidCFGScale", "CFGScale"),
    ("negativePrompt empty", ltx23(negativePrompt=""), "invalidNegativePrompt", "negativePrompt"),
    ("negativePrompt too long", ltx2(negativePrompt="a" * 10001), "invalidNegativePrompt", "negativePrompt"),
    ("negativePrompt not a string", ltx2(negativePrompt=["fog"]), "invalidNegativePrompt", "negativePrompt"),
    ("routing not an object", fast(routing="eu"), "invalidRouting", "routing"),
    ("2.3 Fast 12 s at 48 fps", ltx23_fast(duration=12, fps=48), "invalidDuration", "duration"),
    ("2.3 Fast 12 s at 1440p", ltx23_fast(duration=12, width=2560, height=1440), "invalidDuration", "duration"),
    ("2.3 Fast with neither size nor image", ltx23_fast(width=DROP, height=DROP), "missingWidth", "width"),
    ("LTX-2 21 s", ltx2(duration=21), "invalidDuration", "duration"),
    ("LTX-2 off the 8-pixel grid", ltx2(width=1921), "unsupportedDimensions", "width"),
    ("LTX-2 fps 51", ltx2(fps=51), "invalidFps", "fps"),
]


OTHER_CASES = [
    ("getResponse without taskUUID", [{"taskType": "getResponse"}], 400, "missingTaskUUID", "taskUUID"),
    ("getResponse of an unknown task", [{"taskType": "getResponse", "taskUUID": U}], 404, "taskNotFound", "taskUUID"),
    ("getTaskDetails of an unknown task", [{"taskType": "getTaskDetails", "taskUUID": U}], 404, "taskNotFound", "taskUUID"),
    ("imageUpload without image", [{"taskType": "imageUpload", "taskUUID": U}], 400, "missingImage", "image"),
    ("imageUpload of bad base64", [{"taskType": "imageUpload", "taskUUID": U, "image": "!!notbase64"}], 400, "invalidImage", "image"),
    ("imageUpload of a non-image", [{"taskType": "imageUpload", "taskUUID": U, "image": "aGVsbG8gd29ybGQ="}], 400, "invalidImage", "image"),
    ("imageUpload over the pixel limit", [{"taskType": "imageUpload", "taskUUID": U, "image": huge_png()}], 400, "invalidImage", "image"),
    ("unknown taskType", [{"taskType": "imageInference", "taskUUID": U}], 400, "invalidTaskType", "taskType"),
    ("missing taskType", [{"taskUUID": U}], 400, "missingTaskType", "taskType"),
    ("task not an object", [42], 400, "invalidRequestBody", "body"),
    ("body not an array", {"taskType": "ping"}, 400, "invalidRequestBody", "body"),
]


# RunComfy bodies for ltx/ltx-2/fast text-to-video: (name, fields over the seed's prompt (None drops one), parameter)
BAD_BODIES = [
    ("duration not offered", {"duration": 7}, "duration"),
    ("duration odd type", {"duration": "6"}, "duration"),
    ("12 s at 1440p", {"duration": 12, "resolution": "1440p"}, "duration"),
    ("12 s at 50 fps", {"duration": 12, "fps": 50}, "duration"),
    ("resolution unknown", {"resolution": "720p"}, "resolution"),
    ("free size on a hosted model", {"resolution": "128x72"}, "resolution"),
    ("aspect ratio", {"aspect_ratio": "9:16"}, "aspect_ratio"),
    ("fps", {"fps": 24}, "fps"),
    ("generate_audio a string", {"generate_audio": "yes"}, "generate_audio"),
    ("unknown parameter", {"negative_prompt": "x"}, "negative_prompt"),
    ("image_url on text-to-video", {"image_url": "https://example.com/a.png"}, "image_url"),
    ("prompt missing", {"prompt": None}, "prompt"),
    ("seed negative", {"seed": -1}, "seed"),
]


def runcomfy_body(fields: dict) -> dict:
    return {key: value for key, value in {"prompt": SEED_PROMPT, **fields}.items() if value is not None}


def cases_named(cases: list[tuple], *names: str) -> list[tuple]:
    """The cases of a table with these names (the few a real server is sent)."""
    picked = [case for case in cases if case[0] in names]
    assert len(picked) == len(names), names
    return picked
