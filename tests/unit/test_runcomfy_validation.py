"""RunComfy submit bodies in-process: defaults from the seed's schema, the catalog's duration rule, demo stand-ins
(the error table: test_validation_errors.py)."""

import pytest

from server.api.runcomfy.protocol import RunComfyError
from server.api.runcomfy.validation import resolve_model, validate_submit


def fast_job(**body):
    return validate_submit({"prompt": "a cat on a boat", **body}, resolve_model("ltx/ltx-2/fast", "text-to-video", False), "text-to-video")


def test_the_seed_schema_defaults():
    job = fast_job()
    assert (job.model, job.width, job.height, job.duration, job.fps, job.audio) == ("lightricks:2@1", 1920, 1080, 6.0, 25, True)
    assert len(job.seeds) == 1 and job.frame_images is None


def test_resolutions_and_long_durations():
    assert (fast_job(resolution="2160p").width, fast_job(resolution="1440p").height) == (3840, 1440)
    assert fast_job(duration=20).duration == 20.0
    with pytest.raises(RunComfyError) as raised:
        fast_job(duration=14, resolution="2160p")
    assert raised.value.parameter == "duration" and "1920x1080 and 25 fps only" in raised.value.message


def test_pro_and_image_to_video():
    spec = resolve_model("ltx/ltx-2/pro", "image-to-video", False)
    job = validate_submit({"prompt": "a dog", "image_url": "https://example.com/dog.png", "seed": 5}, spec, "image-to-video")
    assert (job.model, job.frame_images, job.image_urls, job.seeds) == (
        "lightricks:2@0", [{"image": "https://example.com/dog.png", "frame": 0}], ["https://example.com/dog.png"], [5])
    with pytest.raises(RunComfyError) as raised:
        validate_submit({"prompt": "a dog", "duration": 12}, spec, "text-to-video")  # Pro has no long durations
    assert raised.value.parameter == "duration"


def test_demo_stand_ins_only_in_demo_mode():
    assert resolve_model("ltx-runtime/tiny/fast", "text-to-video", True).id == "ltx-runtime:tiny@1"
    with pytest.raises(RunComfyError) as raised:
        resolve_model("ltx-runtime/tiny/fast", "text-to-video", False)
    assert (raised.value.code, raised.value.name) == (400001, "InvalidResourceIdentifier")
    assert "ltx/ltx-2/fast/text-to-video" in raised.value.message
