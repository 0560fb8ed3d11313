"""One percentage over every stage of a job, weighted by the stages' predicted (measured) seconds."""

from ltx_runtime.progress import DEFAULT_RATES, STAGES, JobProgress, StageTimes, denoising_steps


def test_the_percentage_follows_the_predicted_share_of_each_stage():
    predicted = dict.fromkeys(STAGES, 0.0) | {"stage_1": 1.0, "decoding": 3.0}  # the decode: 3/4 of the job
    changes = []
    progress = JobProgress(predicted, lambda stage, percent: changes.append((stage, percent)))
    progress("text_encoding", 0.0)
    progress("stage_1", 1.0)
    progress("decoding", 0.5)
    progress("decoding", 1.0)
    progress("encoding", 1.0)
    progress("uploading", 1.0)
    assert changes == [("text_encoding", 0), ("stage_1", 25), ("decoding", 62), ("decoding", 99), ("encoding", 99),
                       ("uploading", 99)]  # 100 is the finished result's


def test_a_retried_attempt_never_takes_the_percentage_back():
    changes = []
    progress = JobProgress(dict.fromkeys(STAGES, 1.0), lambda stage, percent: changes.append((stage, percent)))
    progress("decoding", 0.0)
    progress("text_encoding", 0.0)
    assert changes == [("decoding", 57), ("text_encoding", 57)]


def test_denoising_steps_become_stage_1_upsampling_and_stage_2():
    reports = []
    on_step = denoising_steps(lambda stage, fraction: reports.append((stage, fraction)), stage_1_steps=2)
    for done in range(1, 6):
        on_step(done, 5)
    assert reports == [("stage_1", 0.5), ("stage_1", 1.0), ("upsampling", 0.0), ("stage_2", 1 / 3), ("stage_2", 2 / 3),
                       ("stage_2", 1.0)]


def test_stage_times_are_measured_per_model_and_shape():
    times = StageTimes()
    default = times.predict("m", 100, 10, 5)
    assert default["decoding"] == DEFAULT_RATES["decoding"] * 5000
    assert default["text_encoding"] == DEFAULT_RATES["text_encoding"]  # does not grow with the clip
    times.learn("m", 100, 10, 5, {"decoding": 7.0})
    assert times.predict("m", 100, 10, 5)["decoding"] == 7.0
    assert times.predict("m", 100, 10, 6) == times.predict("other", 100, 10, 6) == StageTimes().predict("m", 100, 10, 6)
