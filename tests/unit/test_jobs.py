"""The runtime's job type: the one place a job becomes the engine's request (`Job.generation_request`), and the form
the task store keeps (no seeds in its JSON: they are the results')."""

from __future__ import annotations

import json
from dataclasses import fields

from ltx_runtime.media import OutputFormat
from ltx_runtime.request import LAST, GenerationRequest, Keyframe, SafetyMode, SafetyRequest

from support.in_process import api_app, call
from support.server_harness import video_task

from server.api.auth import key_id
from server.store.records import ResultRecord, ResultStatus, TaskRecord, TaskStatus
from server.tasks.jobs import Job

ENGINE_FIELDS = {
    "model": "model", "prompt": "prompt", "width": "width", "height": "height", "duration": "duration", "fps": "fps",
    "audio": "audio", "output_format": "output_format", "quality": "quality", "frame_images": "keyframes",
    "audio_input_file": "audio_input", "steps": "steps", "cfg_scale": "guidance_scale",
    "negative_prompt": "negative_prompt", "loras": "loras",
}  # fmt: skip
"""Job field -> the GenerationRequest field it becomes."""
NOT_THE_ENGINES = {
    "seeds": "one per result: the request takes the seed of the result it makes",
    "ttl": "how long the results stay downloadable (the worker's, after the engine)",
    "webhook_url": "a delivery of the finished result",
    "upload_endpoint": "a delivery of the finished result",
    "audio_input": "the audio as sent; the engine gets the bytes of audio_input_file",
    "safety": "the worker's content checks around the engine (its frame observer, the input check)",
}


def every_field_job() -> Job:
    """A job with every field set, none to its default (lists where the stored JSON has them)."""
    return Job(
        model="lightricks:ltx@2.3", prompt="a lighthouse in the fog", width=1280, height=704, duration=8.0, fps=24,
        audio=True, seeds=[11, 12], output_format="webm", quality=80, ttl=600, webhook_url="https://hooks.example/a",
        upload_endpoint="https://bucket.example/put",
        frame_images=[{"image": "https://images.example/first.png", "frame": 0, "file": "first.png"},
                      {"image": "https://images.example/last.png", "frame": LAST, "file": "last.png"}],
        audio_input="https://audio.example/voice.wav", audio_input_file="voice.wav", steps=12, cfg_scale=4.5,
        negative_prompt="blur", loras=[["style", 0.5]], safety=SafetyRequest(SafetyMode.FULL, True),
    )  # fmt: skip


def test_every_job_field_becomes_a_request_field_or_is_named_as_not_the_engines():
    """A new Job field fails here until generation_request maps it (and ENGINE_FIELDS says so) or NOT_THE_ENGINES
    says why the engine does not take it; and every request field comes from the job (the seed from its result)."""
    assert not set(ENGINE_FIELDS) & set(NOT_THE_ENGINES)
    assert {field.name for field in fields(Job)} == set(ENGINE_FIELDS) | set(NOT_THE_ENGINES)
    assert {field.name for field in fields(GenerationRequest)} == set(ENGINE_FIELDS.values()) | {"seed"}


def test_generation_request_maps_every_field_of_the_job():
    files = {"first.png": b"first image", "last.png": b"last image", "voice.wav": b"voice"}
    request = every_field_job().generation_request(12, files.__getitem__)
    assert request == GenerationRequest(
        model="lightricks:ltx@2.3", prompt="a lighthouse in the fog", width=1280, height=704, duration=8.0, fps=24,
        audio=True, seed=12, output_format=OutputFormat.WEBM, quality=80,
        keyframes=(Keyframe(b"first image", 0), Keyframe(b"last image", LAST)), audio_input=b"voice", steps=12,
        guidance_scale=4.5, negative_prompt="blur", loras=(("style", 0.5),),
    )  # fmt: skip
    # Every field differs from the request's defaults, so a field the mapping left out would show above.
    defaults = GenerationRequest(model="", prompt="", width=0, height=0, duration=0.0, fps=0, audio=False)
    left_at_default = [field.name for field in fields(GenerationRequest)
                       if getattr(request, field.name) == getattr(defaults, field.name)]  # fmt: skip
    assert left_at_default == []


def read_no_file(name: str) -> bytes:
    raise AssertionError(f"a job without inputs read {name}")


def test_a_job_without_inputs_asks_for_none_and_leaves_the_duration_to_the_head():
    job = Job(model="lightricks:ltx@2.5-fast", prompt="a cat", width=1920, height=1080, duration=None, fps=24,
              audio=True, seeds=[3])  # fmt: skip
    request = job.generation_request(3, read_no_file)
    assert (request.duration, request.keyframes, request.audio_input, request.loras) == (None, (), None, ())
    assert (request.steps, request.guidance_scale, request.negative_prompt) == (None, None, None)


def test_the_stored_job_holds_no_seeds_and_reads_back_with_its_results_seeds():
    job = every_field_job()
    stored = json.loads(json.dumps(job.to_dict()))  # what the task store keeps
    assert "seeds" not in stored and stored["safety"] == {"mode": "full", "check_inputs": True}
    results = [ResultRecord(index, f"video-{index}", seed, ResultStatus.PROCESSING, 0, None, None, None, None)
               for index, seed in enumerate(job.seeds)]  # fmt: skip
    record = TaskRecord(1, "key", "task", "videoInference", {}, stored, TaskStatus.QUEUED, 0, None, None, results)
    assert Job.from_record(record) == job


def test_the_operators_required_checks_are_added_at_submission_and_stored_with_the_job(tmp_path):
    """`require_safety` is applied once, when the task is accepted; the worker runs the checks the job carries."""
    app = api_app(tmp_path, "k", require_safety="fast")
    asked_nothing, asked_full = video_task(), video_task(safety={"mode": "full"})
    for task in (asked_nothing, asked_full):
        assert call(app, "POST", "/v1", json=[task], headers={"Authorization": "Bearer k"}).status_code == 200
    stored = [app.state.store.get(key_id("k"), task["taskUUID"]) for task in (asked_nothing, asked_full)]
    assert [Job.from_record(record).safety for record in stored] == [
        SafetyRequest(SafetyMode.FAST, True), SafetyRequest(SafetyMode.FULL, True)
    ]
