"""Catalog facts against the hosted API's published pages (shared/seeds) and runware-contract.md section 8."""

import pytest

from ltx_runtime.catalog import GUIDANCE_BY_RECIPE, MODELS, Recipe, UnknownModelError, get_model, hosted_models

LANDSCAPE = {(1920, 1080), (2560, 1440), (3840, 2160)}


HOSTED = {"lightricks:2@1", "lightricks:2@0", "lightricks:ltx@2.3", "lightricks:ltx@2.3-fast", "lightricks:ltx@2",
          "lightricks:ltx@2.5-fast", "lightricks:ltx@2.5-pro"}  # LTX-2.5: tests/engine/test_ltx25.py


def test_the_hosted_models_and_the_tiny_demo_models_are_listed():
    assert set(MODELS) >= HOSTED | {"ltx-runtime:tiny@1", "ltx-runtime:tiny-pro@1", "ltx-runtime:tiny-ltx23@1",
                                    "ltx-runtime:tiny-ltx23-fast@1", "ltx-runtime:tiny-ltx25@1",
                                    "ltx-runtime:tiny-ltx25-pro@1"}
    assert {spec.id for spec in hosted_models()} >= HOSTED
    assert all(model_id.startswith("ltx-runtime:tiny") for model_id in set(MODELS) - {s.id for s in hosted_models()})
    assert get_model("ltx-runtime:tiny@1").demo_only


@pytest.mark.parametrize(
    "model_id, name, recipe, fps, audio_flag, audio_default, sample_rate",
    [
        ("lightricks:2@1", "LTX-2 Fast", Recipe.FAST, (25, 50), ("providerSettings", "lightricks", "generateAudio"), False, 24000),
        ("lightricks:2@0", "LTX-2 Pro", Recipe.PRO, (25, 50), ("providerSettings", "lightricks", "generateAudio"), False, 24000),
        ("lightricks:ltx@2.3", "LTX-2.3", Recipe.LTX23, (24, 25, 48, 50), ("settings", "audio"), True, 48000),
    ],
)
def test_hosted_model_facts(model_id, name, recipe, fps, audio_flag, audio_default, sample_rate):
    spec = get_model(model_id)
    assert spec.name == name
    assert spec.recipe is recipe
    assert spec.durations == (6, 8, 10)
    assert spec.fps_values == fps
    assert (spec.default_duration, spec.default_fps) == (6, 25)
    assert spec.audio_flag == audio_flag
    assert spec.audio_default is audio_default
    assert spec.audio_sample_rate == sample_rate
    assert spec.weights


def test_sizes_fast_and_pro_are_landscape_only_and_ltx23_adds_portrait():
    for model_id in ("lightricks:2@1", "lightricks:2@0"):
        assert set(get_model(model_id).sizes) == LANDSCAPE
    assert set(get_model("lightricks:ltx@2.3").sizes) == LANDSCAPE | {(h, w) for w, h in LANDSCAPE}
    fast = get_model("lightricks:2@1")
    assert fast.allows_size(2560, 1440)
    assert not fast.allows_size(1080, 1920)
    assert not fast.allows_size(1280, 720)


@pytest.mark.parametrize(
    "model_id, width, height, duration, price",
    [
        ("lightricks:2@1", 1920, 1080, 8, 0.32),  # seed 000 example response
        ("lightricks:2@1", 1920, 1080, 6, 0.24),
        ("lightricks:2@1", 3840, 2160, 10, 1.60),
        ("lightricks:2@1", 2560, 1440, 8, 0.64),
        ("lightricks:2@0", 1920, 1080, 8, 0.48),  # seed 001 example response
        ("lightricks:2@0", 3840, 2160, 8, 1.92),
        ("lightricks:2@0", 3840, 2160, 10, 2.40),
        ("lightricks:ltx@2.3", 1920, 1080, 8, 0.64),
        ("lightricks:ltx@2.3", 1080, 1920, 8, 0.64),
        ("lightricks:ltx@2.3", 2160, 3840, 10, 3.20),
    ],
)
def test_hosted_prices(model_id, width, height, duration, price):
    assert get_model(model_id).hosted_price(width, height, duration) == pytest.approx(price)


def test_tiny_model_allows_small_sizes_on_an_8_pixel_grid():
    tiny = get_model("ltx-runtime:tiny@1")
    assert tiny.recipe is Recipe.FAST
    assert tiny.allows_size(64, 64) and tiny.allows_size(1024, 1024) and tiny.allows_size(200, 104)
    assert not tiny.allows_size(56, 64)
    assert not tiny.allows_size(1032, 64)
    assert not tiny.allows_size(100, 64)
    assert tiny.durations == tuple(range(1, 11))
    assert tiny.fps_values == tuple(range(8, 51))
    assert tiny.audio_flag == get_model("lightricks:2@1").audio_flag
    assert tiny.audio_default is False
    assert tiny.hosted_price(256, 144, 2) is None


def test_tiny_stand_ins_mirror_their_hosted_models():
    for tiny_id, hosted_id in (("ltx-runtime:tiny-pro@1", "lightricks:2@0"), ("ltx-runtime:tiny-ltx23@1", "lightricks:ltx@2.3"),
                               ("ltx-runtime:tiny-ltx23-fast@1", "lightricks:ltx@2.3-fast")):
        tiny, hosted = get_model(tiny_id), get_model(hosted_id)
        assert tiny.demo_only and not hosted.demo_only
        for fact in ("recipe", "architecture", "audio_flag", "audio_default", "audio_sample_rate", "takes_loras"):
            assert getattr(tiny, fact) == getattr(hosted, fact), fact


def test_unknown_model_names_the_known_ones():
    with pytest.raises(UnknownModelError) as raised:
        get_model("lightricks:9@9")
    assert "lightricks:9@9" in str(raised.value)
    assert "lightricks:2@1" in str(raised.value)


def test_fast_clips_above_10_s_only_at_1080p_25_fps():
    """Lightricks' hosted matrix; every contract (Runware, RunComfy) and the CLI read this one rule."""
    fast = get_model("lightricks:2@1")
    assert fast.all_durations() == (6, 8, 10, 12, 14, 16, 18, 20)
    assert all(fast.duration_error(1920, 1080, duration, 25) is None for duration in fast.all_durations())
    assert "1920x1080 and 25 fps only" in fast.duration_error(2560, 1440, 12, 25)
    assert "not 1920x1080 at 50 fps" in fast.duration_error(1920, 1080, 20, 50)
    assert fast.duration_error(3840, 2160, 10, 50) is None
    assert "takes durations of 6, 8, 10" in fast.duration_error(1920, 1080, 7, 25)
    for model_id in ("lightricks:2@0", "lightricks:ltx@2.3"):
        assert get_model(model_id).duration_error(1920, 1080, 12, 25) is not None


def test_ltx23_fast_is_the_distilled_recipe_on_ltx23_with_its_long_durations_at_1080p_either_way():
    """runware.ai/docs/models/lightricks-ltx-2-3-fast.md: 12-20 s at 1920x1080 and 1080x1920 with 24 or 25 fps."""
    fast = get_model("lightricks:ltx@2.3-fast")
    assert (fast.recipe, fast.architecture, fast.audio_sample_rate) == (Recipe.FAST, "ltx-2.3", 48000)
    assert fast.audio_flag == ("settings", "audio") and fast.audio_default is True
    assert fast.takes_loras and fast.guidance is None and fast.size_from_image
    assert set(fast.sizes) == set(get_model("lightricks:ltx@2.3").sizes)
    for width, height in ((1920, 1080), (1080, 1920)):
        for fps in (24, 25):
            assert fast.duration_error(width, height, 20, fps) is None
        assert "24 or 25 fps" in fast.duration_error(width, height, 12, 48)
    assert fast.duration_error(2560, 1440, 12, 25) is not None
    assert fast.duration_error(3840, 2160, 10, 50) is None
    assert fast.hosted_price(1080, 1920, 10) == pytest.approx(0.60)
    assert fast.hosted_price(3840, 2160, 6) == pytest.approx(1.44)


def test_open_weights_ltx2_takes_free_sizes_durations_fps_and_the_guided_parameters():
    ltx2 = get_model("lightricks:ltx@2")
    assert (ltx2.recipe, ltx2.architecture, ltx2.weights) == (Recipe.PRO, "ltx-2", get_model("lightricks:2@0").weights)
    assert ltx2.allows_size(1280, 720) and ltx2.allows_size(1920, 1080) and not ltx2.allows_size(1921, 1080)
    assert ltx2.duration_error(1920, 1080, 5, 30) is None and 30 in ltx2.fps_values
    assert ltx2.guidance.default_steps == 40 and ltx2.guidance.default_cfg == 3.0
    assert get_model("lightricks:ltx@2.3").guidance.default_steps == 30
    assert not ltx2.takes_loras
    assert ltx2.hosted_price(1920, 1080, 5) == pytest.approx(0.15)  # "$0.15 / 5 s"
    for model_id in ("lightricks:2@1", "lightricks:2@0", "lightricks:ltx@2.3-fast"):
        assert get_model(model_id).guidance is None


def test_the_guided_recipes_defaults_live_in_the_catalog_once():
    """Review finding: 40 / 30 steps were written both here and in recipes/guided.py; the recipe reads the catalog,
    and a model that takes `steps` offers its recipe's default."""
    from ltx_runtime.recipes import guided

    for recipe, params in guided.PARAMS.items():
        limits = GUIDANCE_BY_RECIPE[recipe]
        assert (params.steps, params.video_cfg) == (limits.default_steps, limits.default_cfg)
    assert {recipe: params.steps for recipe, params in guided.PARAMS.items()} == {
        Recipe.PRO: 40, Recipe.LTX23: 30, Recipe.LTX25_PRO: 30}  # fmt: skip  # ltx-pipelines constants.py
    for spec in MODELS.values():
        assert spec.guidance is None or spec.guidance == GUIDANCE_BY_RECIPE[spec.recipe], spec.id
