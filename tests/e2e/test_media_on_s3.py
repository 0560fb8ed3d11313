"""A real server (`serve`, its worker) that keeps its media in S3, a real S3 API server (moto in server mode): results
presigned for their ttl, uploads read back from S3, first frames read from their one object, cancelled clips left out,
nothing on the server's disk, and the cleanup loop's expiry. The media store's contract: contract/test_media_store.py."""

from __future__ import annotations

import base64
import http.client
import time
import urllib.request
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import probe
from support.receiver import Receiver
from support.s3_server import CREDENTIALS
from support.server_harness import ServerProcess, download, video_task


def get_without_redirect(url: str) -> tuple[int, str | None]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    connection.request("GET", parts.path)
    response = connection.getresponse()
    connection.close()
    return response.status, response.getheader("Location")


@pytest.mark.slow  # a server of its own, two clips and a 60 s ttl (the shortest the contract allows) to run out
def test_a_server_keeps_its_media_in_s3(s3, tiny_root, tmp_path, say):
    bucket = s3.new_bucket()
    receiver = Receiver()  # the uploadEndpoint, and the image
    data_dir = tmp_path / "data"
    server = ServerProcess(
        data_dir, tiny_root, LTX_MEDIA_URL=f"s3://{bucket}/ltx", LTX_S3_ENDPOINT_URL=s3.endpoint,
        LTX_OUTBOUND_ALLOW_HOSTS="127.0.0.1", **CREDENTIALS,
    ).start()  # fmt: skip
    try:
        submitted = time.time()
        expiring = video_task(ttl=60, uploadEndpoint=receiver.url("/upload.mp4"),
                              providerSettings={"lightricks": {"generateAudio": True}})  # fmt: skip
        assert server.post([expiring])[0] == 200
        image = "data:image/jpeg;base64," + base64.b64encode(receiver.image).decode()
        image_uuid = server.post([{"taskType": "imageUpload", "taskUUID": str(uuid.uuid4()), "image": image}])[1][
            "data"][0]["imageUUID"]  # fmt: skip
        assert f"ltx/images/{image_uuid}" in s3.keys(bucket)

        (item,) = server.wait_for_results(expiring["taskUUID"])
        name = f"{item['videoUUID']}.mp4"
        url = urlsplit(item["videoURL"])  # presigned for what is left of the ttl
        assert f"{url.scheme}://{url.netloc}{url.path}" == f"{s3.endpoint}/{bucket}/ltx/media/{name}"
        assert 0 < int(parse_qs(url.query)["X-Amz-Expires"][0]) <= 60
        path, content_type = download(item["videoURL"], tmp_path / "clip.mp4")
        info = probe(path)
        assert content_type == "video/mp4" and (info.width, info.height, info.frames, info.fps) == (128, 72, 8, 8)
        assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 24000, 2)
        assert [key for key in s3.keys(bucket) if "/media/" in key] == [f"ltx/media/{name}"]  # exactly once
        (put,) = receiver.wait_for("PUT", "/upload.mp4")  # the upload delivery read the object back from S3
        assert put["body"] == path.read_bytes() and put["headers"]["Content-Type"] == "video/mp4"
        status, location = get_without_redirect(f"{server.base}/media/{name}")
        assert status == 307 and location.startswith(f"{s3.endpoint}/{bucket}/ltx/media/{name}?")

        first_frame = video_task(width=160, height=88, duration=1, fps=9, inputs={"frameImages": [image_uuid]})
        assert server.post([first_frame])[0] == 200
        (framed,) = server.wait_for_results(first_frame["taskUUID"])
        info = probe(download(framed["videoURL"], tmp_path / "framed.mp4")[0])
        assert (info.width, info.height, info.frames, info.fps) == (160, 88, 9, 9)
        status, location = get_without_redirect(f"{server.base}/images/{image_uuid}")
        assert status == 307
        with urllib.request.urlopen(location) as response:
            assert response.read() == receiver.image and response.headers["Content-Type"] == "image/jpeg"
        # The worker read the uploaded image itself from S3 (no local images folder, checked below): no copy is made.
        images = [key for key in s3.keys(bucket) if "/images/" in key]
        assert f"ltx/images/{image_uuid}" in images and not any("/images/frame-" in key for key in images)

        cancelled, after = video_task(width=512, height=288, duration=4, fps=25), video_task()
        assert server.post([cancelled, after])[0] == 200
        deadline = time.time() + 120
        while time.time() < deadline:
            (running,) = server.post([{"taskType": "getResponse", "taskUUID": cancelled["taskUUID"]}])[1]["data"]
            if running["progress"] > 0:  # the worker has it
                break
            time.sleep(0.2)
        assert server.post([{"taskType": "cancelTask", "taskUUID": cancelled["taskUUID"]}])[0] == 200
        (later,) = server.wait_for_results(after["taskUUID"])  # one worker: it has left the cancelled task
        media_objects = [key for key in s3.keys(bucket) if "/media/" in key]
        assert f"ltx/media/{running['videoUUID']}.mp4" not in media_objects and len(media_objects) == 3
        # Nothing stays on the server's disk: no scratch file, no media or images folder.
        assert not any((data_dir / "scratch").iterdir())
        assert not (data_dir / "media").exists() and not (data_dir / "images").exists()

        say(f"waiting for the cleanup loop to delete the first clip, {submitted + 60 - time.time():.0f} s to its ttl")
        while f"ltx/media/{name}" in s3.keys(bucket) and time.time() < submitted + 120:
            time.sleep(1)
        gone_after = time.time() - submitted
        assert 60 <= gone_after < 120  # the cleanup loop deleted it once the ttl had passed, not before
        assert get_without_redirect(f"{server.base}/media/{name}")[0] == 404
        kept = sorted(f"ltx/media/{item['videoUUID']}.mp4" for item in (framed, later))
        assert [key for key in s3.keys(bucket) if "/media/" in key] == kept
    finally:
        server.stop()
        receiver.http.shutdown()
