"""videoInference validation in-process: defaults and seeds (the error table: test_validation_errors.py)."""

import uuid

import pytest

from server.api.runware.protocol import ContractError
from server.tasks.jobs import MAX_RANDOM_SEED
from ltx_runtime.loras import LoraEntry
from server.api.runware.validation import validate_video_inference


def task(**fields):
    base = {"taskType": "videoInference", "taskUUID": str(uuid.uuid4()), "model": "lightricks:2@1",
            "positivePrompt": "a cat on a boat"}
    base.update(fields)
    return base


def test_defaults_for_fast():
    job = validate_video_inference(task(), demo=False)
    assert (job.width, job.height, job.duration, job.fps) == (1920, 1080, 6.0, 25)
    assert job.audio is False and job.output_format == "mp4" and job.quality == 95
    assert job.number_results == 1 and job.ttl is None and job.include_cost is False


def test_ltx23_reads_settings_audio_and_defaults_it_to_on():
    sized = {"width": 1080, "height": 1920}
    assert validate_video_inference(task(model="lightricks:ltx@2.3", **sized), demo=False).audio is True
    off = task(model="lightricks:ltx@2.3", settings={"audio": False}, **sized)
    assert validate_video_inference(off, demo=False).audio is False


def test_fast_reads_provider_settings():
    job = validate_video_inference(task(providerSettings={"lightricks": {"generateAudio": True}}), demo=False)
    assert job.audio is True


def test_seeds_follow_a_given_seed_and_random_ones_are_distinct_and_js_safe():
    assert validate_video_inference(task(seed=9, numberResults=3), demo=False).seeds == [9, 10, 11]
    seeds = validate_video_inference(task(numberResults=4), demo=False).seeds
    assert len(set(seeds)) == 4 and all(1 <= seed <= MAX_RANDOM_SEED for seed in seeds)


def test_the_tiny_model_is_offered_in_demo_mode_only():
    tiny = task(model="ltx-runtime:tiny@1", width=128, height=72, duration=1, fps=8)
    assert validate_video_inference(tiny, demo=True).model == "ltx-runtime:tiny@1"
    with pytest.raises(ContractError) as raised:
        validate_video_inference(tiny, demo=False)
    assert raised.value.code == "invalidModel"


def test_output_format_and_sdk_extras():
    job = validate_video_inference(task(outputFormat="WEBM", customTaskUUID="x", outputQuality=20), demo=False)
    assert job.output_format == "webm" and job.quality == 20


def test_fast_long_durations_at_1080p_25_fps_only():
    assert validate_video_inference(task(duration=16), demo=False).duration == 16.0
    for fields in ({"duration": 16, "fps": 50}, {"duration": 12, "width": 2560, "height": 1440}):
        with pytest.raises(ContractError) as raised:
            validate_video_inference(task(**fields), demo=False)
        assert (raised.value.code, raised.value.parameter) == ("invalidDuration", "duration")
        assert "1920x1080 and 25 fps only" in raised.value.message


def test_an_unknown_duration_is_explained_as_the_cli_explains_it():
    """The API and the CLI read one catalog message, the long durations' 1080p-only caveat included."""
    from ltx_runtime.catalog import get_model

    with pytest.raises(ContractError) as raised:
        validate_video_inference(task(duration=7), demo=False)
    assert raised.value.message == get_model("lightricks:2@1").duration_error(1920, 1080, 7, 25)
    assert "(and 12, 14, 16, 18, 20 at 1920x1080 and 25 fps)" in raised.value.message


@pytest.mark.parametrize(
    "safety, expected",
    [
        (None, {"mode": "none", "check_inputs": False}),
        ({}, {"mode": "none", "check_inputs": False}),
        ({"checkContent": False}, {"mode": "none", "check_inputs": False}),
        ({"checkContent": True}, {"mode": "fast", "check_inputs": False}),  # "When enabled, defaults to fast mode"
        ({"checkContent": True, "mode": "full"}, {"mode": "full", "check_inputs": False}),
        ({"checkContent": True, "mode": "none"}, {"mode": "fast", "check_inputs": False}),  # asked for: never skipped
        ({"mode": "full"}, {"mode": "full", "check_inputs": False}),
        ({"checkInputs": True}, {"mode": "none", "check_inputs": True}),
    ],
)
def test_safety_becomes_what_the_worker_checks(safety, expected):
    fields = {} if safety is None else {"safety": safety}
    assert validate_video_inference(task(**fields), demo=False).to_dict()["safety"] == expected  # as stored


def test_safety_check_inputs_must_be_a_boolean():
    with pytest.raises(ContractError) as refused:
        validate_video_inference(task(safety={"checkInputs": "yes"}), demo=False)
    assert (refused.value.code, refused.value.parameter) == ("invalidCheckInputs", "safety.checkInputs")


def test_guided_parameters_reach_the_job_and_absent_ones_leave_the_official_defaults():
    sized = {"width": 1920, "height": 1080}
    job = validate_video_inference(
        task(model="lightricks:ltx@2.3", steps=12, CFGScale=4, negativePrompt="fog", seed=5, **sized), demo=False
    )
    assert (job.steps, job.cfg_scale, job.negative_prompt, job.seeds) == (12, 4.0, "fog", [5])
    assert isinstance(job.cfg_scale, float)
    job = validate_video_inference(task(model="lightricks:ltx@2", **sized), demo=False)
    assert (job.steps, job.cfg_scale, job.negative_prompt) == (None, None, None)
    assert (job.duration, job.fps, job.audio) == (5.0, 24, True)


def test_ltx23_fast_and_ltx2_as_the_sdk_sends_them():
    fast = task(model="lightricks:ltx@2.3-fast", width=1080, height=1920, duration=20.0, fps=24, routing={"region": "eu"})
    job = validate_video_inference(fast, demo=False)
    assert (job.width, job.height, job.duration, job.fps, job.audio) == (1080, 1920, 20.0, 24, True)
    ltx2 = task(model="lightricks:ltx@2", width=1280, height=720, duration=7, fps=30, settings={"audio": False})
    job = validate_video_inference(ltx2, demo=False)
    assert (job.width, job.height, job.duration, job.fps, job.audio) == (1280, 720, 7.0, 30, False)


OFFERED = {"style": LoraEntry("style", "style.safetensors", "ltx-2.3"), "old": LoraEntry("old", "old.safetensors", "ltx-2")}


def test_loras_reach_the_job_with_a_default_weight_of_one():
    sized = {"width": 1920, "height": 1080}
    job = validate_video_inference(task(model="lightricks:ltx@2.3-fast", lora=[{"model": "style", "weight": 0.5}], **sized),
                                   demo=False, loras=OFFERED)  # fmt: skip
    assert job.loras == [("style", 0.5)]
    job = validate_video_inference(task(model="lightricks:ltx@2.3", lora=[{"model": "style"}], **sized), demo=False, loras=OFFERED)
    assert job.loras == [("style", 1.0)]


@pytest.mark.parametrize(
    "lora, model, code, words",
    [
        ([{"model": "nobody"}], "lightricks:ltx@2.3-fast", "invalidLora", "unknown LoRA"),
        ([{"model": "old"}], "lightricks:ltx@2.3-fast", "invalidLora", "LoRA for ltx-2 models"),
        ([{"model": "style", "weight": 5}], "lightricks:ltx@2.3", "invalidLora", "weight must be a number from -4 to 4"),
        ([{"model": "style", "weight": "1"}], "lightricks:ltx@2.3", "invalidLora", "weight"),
        ([{"model": "style"}, {"model": "style"}], "lightricks:ltx@2.3", "invalidLora", "listed twice"),
        ([{"model": "style"}] * 5, "lightricks:ltx@2.3", "invalidLora", "at most 4"),
        ({"model": "style"}, "lightricks:ltx@2.3", "invalidLora", "a list"),
        (["style"], "lightricks:ltx@2.3", "invalidLora", "must be an object"),
        ([{"model": "style", "scale": 1}], "lightricks:ltx@2.3", "unsupportedParameter", "lora[0].scale"),
        ([{"model": "style"}], "lightricks:2@1", "unsupportedParameter", "lora is not a parameter"),
        ([{"model": "style"}], "lightricks:ltx@2", "unsupportedParameter", "lora is not a parameter"),
    ],
)
def test_bad_loras_are_refused_before_the_ack(lora, model, code, words):
    with pytest.raises(ContractError) as raised:
        validate_video_inference(task(model=model, width=1920, height=1080, lora=lora), demo=False, loras=OFFERED)
    assert raised.value.code == code and words in raised.value.message
    assert raised.value.parameter.startswith("lora")
