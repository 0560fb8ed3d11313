"""Frame images (data URI, imageUpload UUID, URL; first frame and keyframes), webhooks and uploads, through the
real server.

Receivers and image hosts are HTTP servers on 127.0.0.1, opened to the server by its allowlist setting; addresses
that must be refused are refused before any connection is made.
"""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.request
import uuid

import pytest
from PIL import Image
from websockets.sync.client import connect

from conftest import probe
from server.media.delivery import verify_webhook
from support.server_harness import API_KEY, download, server_fixture, video_task

pytestmark = pytest.mark.slow  # a server of its own and several clips: the long layer

SECRET = "whsec_" + base64.b64encode(b"a test secret of some length").decode()


server = server_fixture("server-delivery", LTX_OUTBOUND_ALLOW_HOSTS="127.0.0.1", LTX_WEBHOOK_SECRET=SECRET)


def image_task(reference, **fields):
    return video_task(**{"width": 160, "height": 88, "duration": 1, "fps": 9, "inputs": {"frameImages": [reference]},
                         **fields})


def check_clip(item, tmp_path):
    info = probe(download(item["videoURL"], tmp_path / f"{item['videoUUID']}.mp4")[0])
    assert (info.video_codec, info.width, info.height, info.frames, info.fps) == ("h264", 160, 88, 9, 9)


def test_first_frame_by_data_uri(server, receiver, tmp_path):
    data_uri = "data:image/jpeg;base64," + base64.b64encode(receiver.image).decode()
    task = image_task({"image": data_uri, "frame": "first"})
    assert server.post([task])[0] == 200
    check_clip(server.wait_for_results(task["taskUUID"])[0], tmp_path)


def test_first_frame_by_plain_base64(server, receiver, tmp_path):
    task = image_task({"image": base64.b64encode(receiver.image).decode(), "frame": 0})
    assert server.post([task])[0] == 200
    check_clip(server.wait_for_results(task["taskUUID"])[0], tmp_path)


def test_first_frame_by_image_upload_uuid(server, receiver, tmp_path):
    upload = {"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()),
              "image": "data:image/jpeg;base64," + base64.b64encode(receiver.image).decode()}
    image_uuid = server.post([upload])[1]["data"][0]["imageUUID"]
    task = image_task(image_uuid)
    assert server.post([task])[0] == 200
    check_clip(server.wait_for_results(task["taskUUID"])[0], tmp_path)


def test_first_frame_by_url_from_an_allowlisted_host(server, receiver, tmp_path):
    task = image_task(receiver.url("/first-frame.jpg"))
    status, body = server.post([task])
    assert (status, body["data"][0]) == (200, {"taskType": "videoInference", "taskUUID": task["taskUUID"]})
    check_clip(server.wait_for_results(task["taskUUID"])[0], tmp_path)
    assert receiver.wait_for("GET", "/first-frame.jpg")


def keyframe_task(frame_images, **fields):
    audio = {"providerSettings": {"lightricks": {"generateAudio": True}}}
    return video_task(**{"width": 160, "height": 88, "duration": 1, "fps": 17, "inputs": {"frameImages": frame_images},
                         **audio, **fields})


def check_keyframe_clip(item, tmp_path):
    info = probe(download(item["videoURL"], tmp_path / f"{item['videoUUID']}.mp4")[0])
    assert (info.video_codec, info.width, info.height, info.frames, info.fps) == ("h264", 160, 88, 17, 17)
    assert (info.audio_codec, info.audio_rate) == ("aac", 24000)


def jpeg_data_uri(colour) -> str:
    buffer = io.BytesIO()
    Image.new("RGB", (320, 180), colour).save(buffer, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode()


def test_first_and_last_frames_over_rest(server, receiver, tmp_path):
    """Keyframes (issue 21): the first frame as a data URI (checked with the task), the last by URL (fetched after
    the reply) and one at frame 8: one clip of the asked shape, with audio; the images are the task's own."""
    task = keyframe_task([{"image": jpeg_data_uri((200, 30, 30)), "frame": "first"},
                          {"image": receiver.url("/last-frame.jpg"), "frame": "last"},
                          {"image": jpeg_data_uri((30, 200, 30)), "frame": 8}])  # fmt: skip
    status, body = server.post([task])
    assert (status, body["data"][0]) == (200, {"taskType": "videoInference", "taskUUID": task["taskUUID"]})
    check_keyframe_clip(server.wait_for_results(task["taskUUID"])[0], tmp_path)
    assert receiver.wait_for("GET", "/last-frame.jpg")


def test_first_and_last_frames_over_websocket(server, tmp_path):
    task = keyframe_task([{"image": jpeg_data_uri((20, 20, 220)), "frame": "first"},
                          {"image": jpeg_data_uri((220, 220, 20)), "frame": "last"}])  # fmt: skip
    with connect(f"ws://127.0.0.1:{server.port}/v1") as socket:
        socket.send(json.dumps([{"taskType": "authentication", "apiKey": API_KEY}]))
        assert "data" in json.loads(socket.recv(timeout=10))
        socket.send(json.dumps([task]))
        assert json.loads(socket.recv(timeout=10)) == {"data": [{"taskType": "videoInference", "taskUUID": task["taskUUID"]}]}
        for _ in range(600):
            socket.send(json.dumps([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}]))
            (item,) = json.loads(socket.recv(timeout=10))["data"]
            if item["status"] == "success":
                break
            assert item["status"] == "processing", item
            time.sleep(0.2)
    check_keyframe_clip(item, tmp_path)


def test_a_keyframe_url_that_fails_fails_the_task(server, receiver):
    """A last frame whose URL redirects to a blocked address: the task fails naming inputs.frameImages."""
    task = keyframe_task([{"image": jpeg_data_uri((1, 2, 3)), "frame": "first"},
                          {"image": receiver.url("/redirect-to-metadata"), "frame": "last"}])  # fmt: skip
    assert server.post([task])[0] == 200
    deadline = time.time() + 60
    while time.time() < deadline:
        item = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])[1]
        if "errors" in item:
            break
        time.sleep(0.2)
    (error,) = item["errors"]
    assert error["code"] == "invalidFrameImages" and error["message"].startswith("inputs.frameImages: ")
    assert "/redirect-to-metadata" in error["message"] and "refused" in error["message"]


def test_an_unknown_image_uuid_is_refused_at_once(server):
    task = image_task(str(uuid.uuid4()))
    status, body = server.post([task])
    assert status == 400
    assert body["errors"][0]["code"] == "invalidFrameImages" and body["errors"][0]["parameter"] == "inputs.frameImages"


def test_another_keys_image_uuid_is_not_visible(server, receiver):
    upload = {"taskType": "imageUpload", "image": base64.b64encode(receiver.image).decode()}
    image_uuid = server.post([upload], key="test-key-beta")[1]["data"][0]["imageUUID"]
    status, body = server.post([image_task(image_uuid)])
    assert status == 400 and body["errors"][0]["code"] == "invalidFrameImages"


@pytest.mark.parametrize("url", [
    "http://[::1]:{port}/x.jpg",                      # IPv6 loopback, not on the allowlist
    "http://[::ffff:10.0.0.1]/x.jpg",                 # IPv4-mapped private address
    "http://0.0.0.0:{port}/x.jpg",                    # unspecified address
    "http://169.254.169.254/latest/meta-data/",       # link-local cloud metadata
    "http://10.0.0.7/x.jpg",                          # private
    "http://100.64.0.1/x.jpg",                        # CGNAT
    "http://[64:ff9b::7f00:1]/x.jpg",                 # NAT64 form of 127.0.0.1
    "http://[2002:7f00:1::1]/x.jpg",                  # 6to4 form of 127.0.0.1
    "http://127.0.0.1:{port}/redirect-to-metadata",   # allowlisted host redirecting to the metadata address
])
def test_image_urls_to_internal_addresses_are_refused(server, receiver, url):
    task = image_task(url.format(port=receiver.port))
    assert server.post([task])[0] == 200  # accepted, then refused when fetched
    deadline = time.time() + 30
    while time.time() < deadline:
        status, body = server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])
        if "errors" in body:
            break
        time.sleep(0.1)
    (error,) = body["errors"]
    assert error["code"] == "invalidFrameImages" and error["taskUUID"] == task["taskUUID"]
    assert "refused" in error["message"]


def test_webhook_signed_and_retried_until_the_receiver_takes_it(server, receiver):
    path = f"/hook-{uuid.uuid4().hex}"
    receiver.failures_left[path] = 2  # 500, 500, then 200
    task = video_task(webhookURL=receiver.url(path), includeCost=True)
    assert server.post([task])[0] == 200
    (item,) = server.wait_for_results(task["taskUUID"])
    calls = receiver.wait_for("POST", path, count=3)
    assert len(calls) == 3
    ids = {call["headers"]["webhook-id"] for call in calls}
    assert ids == {"msg_" + item["videoUUID"].replace("-", "")}  # one message, retried, named after its video
    last = calls[-1]
    assert verify_webhook(SECRET, last["headers"], last["body"])
    assert not verify_webhook(SECRET, last["headers"], last["body"] + b" ")
    payload = json.loads(last["body"])
    assert payload["data"][0] == item and payload["videoURL"] == item["videoURL"]
    details = server.post([{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])[1]["data"][0]
    (delivery,) = details["deliveries"]
    assert (delivery["kind"], delivery["state"], delivery["attempts"]) == ("webhook", "delivered", 3)


def test_upload_endpoint_gets_the_file(server, receiver):
    path = f"/upload-{uuid.uuid4().hex}.mp4"
    task = video_task(uploadEndpoint=receiver.url(path))
    assert server.post([task])[0] == 200
    (item,) = server.wait_for_results(task["taskUUID"])
    (put,) = receiver.wait_for("PUT", path)
    assert put["headers"]["Content-Type"] == "video/mp4"
    with urllib.request.urlopen(item["videoURL"]) as response:
        assert put["body"] == response.read()


def test_a_failed_delivery_does_not_change_the_result(server):
    task = video_task(webhookURL="http://10.0.0.9/hook")  # refused: private address, not allowlisted
    assert server.post([task])[0] == 200
    (item,) = server.wait_for_results(task["taskUUID"])
    assert item["status"] == "success"
    deadline = time.time() + 30
    while time.time() < deadline:
        details = server.post([{"taskType": "getTaskDetails", "taskUUID": task["taskUUID"]}])[1]["data"][0]
        if details["deliveries"] and details["deliveries"][0]["state"] == "failed":
            break
        time.sleep(0.1)
    assert details["deliveries"][0]["state"] == "failed" and "refused" in details["deliveries"][0]["last_error"]
    assert server.post([{"taskType": "getResponse", "taskUUID": task["taskUUID"]}])[1]["data"][0] == item
