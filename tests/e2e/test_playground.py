"""The playground page in a real browser: Debian's Chromium driven by Playwright, against the real server in demo mode.

Screenshots of the main states go to tests/artifacts/playground/ (not committed; docs/playground.png is one of them).
"""

from __future__ import annotations

import io
import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect, sync_playwright

from support.server_harness import API_KEY, server_fixture

pytestmark = pytest.mark.slow  # Chromium against a real server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).parents[1] / "artifacts" / "playground"
TIMEOUT_MS = 180_000
expect.set_options(timeout=TIMEOUT_MS)  # a clip takes seconds on a shared CPU


server = server_fixture("playground")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(server.base + "/")
    yield page
    context.close()


def _enter_key(page):
    page.fill("#api-key", API_KEY)
    page.click("#key-form button")
    expect(page.locator("#key-status")).to_have_text("connected")
    page.select_option("select[name=model]", "ltx-runtime:tiny@1")


def test_models_endpoint_lists_catalog_combinations(server):
    with urllib.request.urlopen(server.base + "/v1/models") as response:
        body = json.loads(response.read())
    assert body["demo"] is True and "DEMO MODE" in body["warning"]
    by_id = {model["id"]: model for model in body["models"]}
    fast = by_id["lightricks:2@1"]
    assert fast["sizes"][0] == [1920, 1080] and fast["fps"] == [25, 50] and 20 in fast["durations"]
    assert {"width": 1920, "height": 1080, "usd": 0.04} in fast["pricePerSecond"]
    assert by_id["ltx-runtime:tiny@1"]["sizeRange"] == {"min": 64, "max": 1024, "step": 8}
    assert by_id["lightricks:ltx@2.3"]["audioDefault"] is True


def test_generate_watch_play_and_find_in_history(page, server):
    expect(page.locator("#demo-warning")).to_contain_text("DEMO MODE")
    _enter_key(page)
    page.select_option("select[name=model]", "ltx-runtime:tiny-pro@1")  # 40 stage-1 steps: time to see it denoise
    page.fill("input[name=width]", "512")
    page.fill("input[name=height]", "288")
    page.select_option("select[name=duration]", "1")
    page.select_option("select[name=fps]", "8")
    page.fill("textarea[name=positivePrompt]", "a lighthouse in a storm")
    page.fill("input[name=seed]", "42")
    page.screenshot(path=ARTIFACTS / "1-form.png")
    page.click("#generate-button")

    # The progress bar moves and the live preview changes while the clip denoises.
    progress_values, previews = set(), set()
    card = page.locator("#running .result").first
    for _ in range(600):
        # One snapshot of the card: the preview image is replaced by the video when the clip is done.
        value, source, done = card.evaluate(
            "card => [card.querySelector('progress')?.value, card.querySelector('img.preview')?.getAttribute('src'),"
            " card.querySelector('video') !== null]"
        )
        progress_values.add(value)
        if source:
            previews.add(source)
            if len(previews) == 2:
                page.screenshot(path=ARTIFACTS / "2-generating.png")
        if done:
            break
        page.wait_for_timeout(100)
    assert len([v for v in progress_values if 0 < v < 100]) >= 2, progress_values
    assert len(previews) >= 2, "the live preview did not change"
    assert all(source.startswith("data:image/png;base64,") for source in previews)

    # The finished clip plays: 1 s at 8 fps.
    video = card.locator("video")
    video.evaluate("v => v.play()")
    page.wait_for_function("v => v.readyState >= 2 && v.currentTime > 0", arg=video.element_handle())
    assert video.evaluate("v => v.duration") == pytest.approx(1.0, abs=0.2)
    assert video.evaluate("v => [v.videoWidth, v.videoHeight]") == [512, 288]
    expect(page.locator("#history tbody tr").first).to_contain_text("a lighthouse in a storm")
    page.screenshot(path=ARTIFACTS / "3-done.png")  # docs/playground.png

    # After a reload the key is remembered and the clip is in the history, with its settings.
    page.reload()
    row = page.locator("#history tbody tr").first
    expect(row).to_contain_text("a lighthouse in a storm")
    expect(row).to_contain_text("512x288")
    expect(row).to_contain_text("ltx-runtime:tiny-pro@1")
    expect(row).to_contain_text("succeeded")
    expect(row).to_contain_text("42")
    page.wait_for_function("() => document.querySelector('#history video')?.readyState >= 1")
    page.screenshot(path=ARTIFACTS / "4-history.png")

    # "Use these settings again" fills the form from the history.
    page.fill("textarea[name=positivePrompt]", "")
    row.get_by_text("use these settings again").click()
    expect(page.locator("textarea[name=positivePrompt]")).to_have_value("a lighthouse in a storm")
    expect(page.locator("input[name=seed]")).to_have_value("42")


def test_in_demo_mode_the_page_opens_on_a_quick_size_and_a_slow_clip_says_so_up_front(page):
    expect(page.locator("select[name=model]")).to_have_value("ltx-runtime:tiny@1")
    assert [page.input_value(f"[name={name}]") for name in ("width", "height", "duration")] == ["256", "144", "2"]
    page.fill("#api-key", API_KEY)
    page.click("#key-form button")
    expect(page.locator("#key-status")).to_have_text("connected")
    page.fill("input[name=width]", "1024")
    page.fill("input[name=height]", "576")
    page.select_option("select[name=duration]", "10")
    page.click("#generate-button")
    card = page.locator("#running .result").first
    expect(card.locator(".slow")).to_contain_text("takes minutes")
    card.locator(".cancel").click()
    expect(card.locator(".stage")).to_contain_text("cancelled")


def test_fixed_sizes_come_from_the_catalog(page):
    page.select_option("select[name=model]", "lightricks:2@1")
    expect(page.locator("#size-list option")).to_have_text(["1920x1080", "2560x1440", "3840x2160"])
    expect(page.locator("input[name=width]")).to_be_hidden()
    expect(page.locator("#price")).to_have_text("Hosted price: $0.24")  # 6 s at 0.04 $/s


def test_impossible_size_is_explained_next_to_the_field(page):
    _enter_key(page)
    page.fill("input[name=width]", "100")
    page.click("#generate-button")
    error = page.locator('.field-error[data-for="width"]')
    expect(error).to_contain_text("100x144 is not a size of ltx-runtime:tiny@1")
    expect(page.locator("input[name=width]")).to_have_class("invalid")
    page.screenshot(path=ARTIFACTS / "5-field-error.png")


def test_dropped_first_frame_goes_through_image_upload(page, server):
    _enter_key(page)
    page.fill("input[name=width]", "64")
    page.fill("input[name=height]", "64")
    page.select_option("select[name=duration]", "1")
    page.select_option("select[name=fps]", "8")
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buffer, format="PNG")
    page.evaluate(
        """bytes => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([new Uint8Array(bytes)], "frame.png", {type: "image/png"}));
            const drop = new DragEvent("drop", {dataTransfer: transfer, bubbles: true});
            document.querySelector("#drop").dispatchEvent(drop);
        }""",
        list(buffer.getvalue()),
    )
    expect(page.locator("#drop-preview")).to_be_visible()
    page.click("#generate-button")
    expect(page.locator("#running .result video").first).to_be_attached()
    status, body = server.post([{"taskType": "listTasks", "limit": 1}])
    image = body["data"][0]["tasks"][0]["request"]["inputs"]["frameImages"][0]["image"]
    assert status == 200 and re.fullmatch(r"[0-9a-f-]{36}", image)  # an imageUUID from imageUpload


def test_cancel_button_stops_a_running_clip(page):
    _enter_key(page)
    page.fill("input[name=width]", "1024")
    page.fill("input[name=height]", "576")
    page.select_option("select[name=duration]", "4")
    page.click("#generate-button")
    card = page.locator("#running .result").first
    page.wait_for_function("bar => bar.value > 0", arg=card.locator("progress").element_handle())
    card.get_by_text("Cancel").click()
    expect(card.locator(".stage")).to_contain_text("the task was cancelled")
    expect(page.locator("#history tbody tr").first).to_contain_text("cancelled")


def test_list_tasks_is_scoped_to_the_key_and_paged(server):
    from support.server_harness import OTHER_KEY, video_task

    status, body = server.post([video_task(width=64, height=64, duration=1, fps=8)])
    assert status == 200
    status, body = server.post([{"taskType": "listTasks", "limit": 1}])
    assert status == 200, body
    listing = body["data"][0]
    assert len(listing["tasks"]) == 1 and listing["offset"] == 0
    assert listing["tasks"][0]["generation"]["width"] == 64
    status, body = server.post([{"taskType": "listTasks"}], key=OTHER_KEY)
    assert body["data"][0]["tasks"] == []
    status, body = server.post([{"taskType": "listTasks", "limit": 0}])
    assert status == 400 and body["errors"][0]["parameter"] == "limit"


def test_get_response_carries_the_preview_only_when_asked(server):
    from support.server_harness import video_task

    task = video_task(model="ltx-runtime:tiny-pro@1", width=512, height=288, duration=1, fps=8)
    assert server.post([task])[0] == 200
    poll = {"taskType": "getResponse", "taskUUID": task["taskUUID"]}
    for _ in range(300):
        _, body = server.post([{**poll, "includePreview": True}])
        item = body["data"][0]
        if item.get("preview") or item["status"] == "success":
            break
        time.sleep(0.1)
    assert item["status"] == "processing", "no preview seen while the clip denoised"
    assert item["preview"]["image"].startswith("data:image/png;base64,") and item["preview"]["steps"] == 40
    _, body = server.post([poll])
    assert "preview" not in body["data"][0]  # what the official SDKs read is unchanged
    server.wait_for_results(task["taskUUID"])
