"""The media store (server/media/store.py): one contract, two stores — the local data folder, and S3 through boto3
against a real S3 API server (moto in server mode, its own process on a loopback port, spoken to over HTTP)."""

from __future__ import annotations

import base64
import http.client
import os
import time
import urllib.request
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from conftest import probe
from server.ops.loops import remove_expired_media
from server.media.store import LocalMediaStore, MediaNotFound, S3MediaStore, image_key, media_key, open_media
from server.settings import Settings
from server.store import open_store
from s3_server import CREDENTIALS, MotoServer
from server_harness import ServerProcess, download, video_task
from test_server_inputs_delivery import Receiver

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server, and boto3's credentials in the environment (where production reads them too)."""
    server = MotoServer(tmp_path_factory.mktemp("moto") / "moto.log").start()
    with pytest.MonkeyPatch.context() as environment:
        for name, value in CREDENTIALS.items():
            environment.setenv(name, value)
        yield server
    server.stop()


def new_bucket(s3: MotoServer) -> str:
    bucket = f"media-{uuid.uuid4().hex[:12]}"
    s3.client().create_bucket(Bucket=bucket)
    return bucket


def keys_in(s3: MotoServer, bucket: str) -> list[str]:
    return sorted(item["Key"] for item in s3.client().list_objects_v2(Bucket=bucket).get("Contents", []))


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalMediaStore(tmp_path / "data", "http://media.example:8000")
    s3 = request.getfixturevalue("s3")
    return S3MediaStore(new_bucket(s3), "some/prefix", s3.endpoint)


def test_put_read_exists_delete(store, tmp_path):
    name = media_key(f"{uuid.uuid4()}.mp4")
    assert not store.exists(name)
    store.put_bytes(name, b"first", "video/mp4")
    store.put_bytes(name, b"second version", "video/mp4")  # a retried result overwrites
    assert store.exists(name) and store.read_bytes(name) == b"second version"
    store.download(name, tmp_path / "copy")
    assert (tmp_path / "copy").read_bytes() == b"second version"
    store.delete(name)
    store.delete(name)  # already gone: no error
    assert not store.exists(name)
    with pytest.raises(MediaNotFound):
        store.read_bytes(name)
    with pytest.raises(MediaNotFound):
        store.download(name, tmp_path / "absent")
    assert not (tmp_path / "absent").exists()


def test_put_file(store, tmp_path):
    scratch = tmp_path / "clip.partial"
    scratch.write_bytes(os.urandom(3000))
    data = scratch.read_bytes()
    store.put_file(image_key("frame-1"), scratch, "image/png")
    assert store.read_bytes(image_key("frame-1")) == data


@pytest.mark.parametrize("name", ["../tasks.sqlite3", "media/../tasks.sqlite3", "tasks.sqlite3", "other/x.mp4",
                                  "media/.x.mp4.partial", "media/", "media/a/b.mp4", "images/x\n"])
def test_names_outside_media_and_images_are_refused(store, name):
    with pytest.raises(ValueError, match="not a media store name"):
        store.put_bytes(name, b"x", "video/mp4")
    with pytest.raises(ValueError, match="not a media store name"):
        store.url(name, 60)


def test_local_urls_are_the_servers_own_routes(tmp_path):
    store = LocalMediaStore(tmp_path, "http://media.example:8000/")
    assert store.url(media_key("a.mp4"), 60) == "http://media.example:8000/media/a.mp4"
    assert store.url(image_key("b"), 60) == "http://media.example:8000/images/b"


def test_s3_urls_are_presigned_for_the_ttl(s3):
    """moto serves presigned URLs but does not enforce their expiry: the validity is read from the signed query."""
    bucket = new_bucket(s3)
    store = S3MediaStore(bucket, "p", s3.endpoint)
    name = media_key("clip.mp4")
    store.put_bytes(name, b"a video", "video/mp4")
    url = urlsplit(store.url(name, 3600.7))
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}{url.path}" == f"{s3.endpoint}/{bucket}/p/media/clip.mp4"
    assert query["X-Amz-Expires"] == ["3600"] and query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Credential"][0].startswith("testing/") and len(query["X-Amz-Signature"][0]) == 64
    with urllib.request.urlopen(url.geturl()) as response:  # plain HTTP, no credentials: the signature is in the URL
        assert (response.read(), response.headers["Content-Type"]) == (b"a video", "video/mp4")
    assert parse_qs(urlsplit(store.url(name, 30 * 86400)).query)["X-Amz-Expires"] == ["604800"]  # SigV4's longest
    assert parse_qs(urlsplit(store.url(name, -5)).query)["X-Amz-Expires"] == ["1"]


def test_s3_multipart_upload_above_the_threshold(s3, tmp_path):
    bucket = new_bucket(s3)
    store = S3MediaStore(bucket, "", s3.endpoint, multipart_bytes=5 * MIB)  # S3's smallest part
    large, small = tmp_path / "large.partial", tmp_path / "small.partial"
    large.write_bytes(os.urandom(11 * MIB))
    small.write_bytes(os.urandom(MIB))
    store.put_file(media_key("large.mp4"), large, "video/mp4")
    store.put_file(media_key("small.mp4"), small, "video/mp4")
    head = s3.client().head_object(Bucket=bucket, Key="media/large.mp4")
    assert head["ETag"].strip('"').endswith("-3")  # a multipart object's ETag counts its parts: 5 + 5 + 1 MiB
    assert head["ContentType"] == "video/mp4" and head["ContentLength"] == 11 * MIB
    assert "-" not in s3.client().head_object(Bucket=bucket, Key="media/small.mp4")["ETag"]  # one PUT
    assert store.read_bytes(media_key("large.mp4")) == large.read_bytes()
    assert keys_in(s3, bucket) == ["media/large.mp4", "media/small.mp4"]


def test_open_media_reads_the_settings(s3, tmp_path):
    local = open_media(Settings(data_dir=tmp_path, port=9001))
    assert isinstance(local, LocalMediaStore) and local.path(media_key("a.mp4")) == tmp_path / "media" / "a.mp4"
    assert local.url(media_key("a.mp4"), 60) == "http://127.0.0.1:9001/media/a.mp4"
    bucket = new_bucket(s3)
    remote = open_media(Settings(data_dir=tmp_path, media_url=f"s3://{bucket}/runs/one/", s3_endpoint_url=s3.endpoint))
    remote.put_bytes(media_key("a.mp4"), b"x", "video/mp4")
    assert keys_in(s3, bucket) == ["runs/one/media/a.mp4"]
    # Clients reach the server at another address than the servers do (here localhost, not 127.0.0.1): videoURLs
    # name the public one and download from it.
    public = s3.endpoint.replace("127.0.0.1", "localhost")
    settings = Settings(data_dir=tmp_path, media_url=f"s3://{bucket}/runs/one", s3_endpoint_url=s3.endpoint,
                        s3_public_endpoint_url=public)  # fmt: skip
    behind_a_name = open_media(settings)
    url = behind_a_name.url(media_key("a.mp4"), 60)
    assert url.startswith(f"{public}/{bucket}/runs/one/media/a.mp4?")
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"x"
    for wrong in ("http://bucket/x", "s3://", "/srv/media", "s3://bucket?x=1"):
        with pytest.raises(ValidationError, match="media_url"):
            Settings(media_url=wrong)


def test_expiry_deletes_the_objects(s3, tmp_path):
    """The cleanup loop's step on S3: expired results' objects go, the others stay, the store forgets the file."""
    bucket = new_bucket(s3)
    media = S3MediaStore(bucket, "x", s3.endpoint)
    tasks = open_store(f"sqlite:///{tmp_path / 'tasks.sqlite3'}")
    record = tasks.submit("k", str(uuid.uuid4()), "videoInference", {}, {}, [1, 2])
    tasks.claim("w", 30)
    names = [f"{result.video_uuid}.mp4" for result in record.results]
    for index, ttl in ((0, -1), (1, 3600)):
        media.put_bytes(media_key(names[index]), b"video", "video/mp4")
        tasks.complete_result(record.id, "w", index, names[index], 1.0, 0.0, time.time() + ttl, [])
    assert remove_expired_media(media, tasks, time.time()) == [record.results[0].video_uuid]
    assert keys_in(s3, bucket) == [f"x/media/{names[1]}"]
    assert tasks.result_by_video(record.results[0].video_uuid)[0].file_name is None


def get_without_redirect(url: str) -> tuple[int, str | None]:
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    connection.request("GET", parts.path)
    response = connection.getresponse()
    connection.close()
    return response.status, response.getheader("Location")


@pytest.mark.slow  # a server of its own, two clips and a 60 s ttl (the shortest the contract allows) to run out
def test_a_server_keeps_its_media_in_s3(s3, tiny_root, tmp_path, say):
    bucket = new_bucket(s3)
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
        assert f"ltx/images/{image_uuid}" in keys_in(s3, bucket)

        (item,) = server.wait_for_results(expiring["taskUUID"])
        name = f"{item['videoUUID']}.mp4"
        url = urlsplit(item["videoURL"])  # presigned for what is left of the ttl
        assert f"{url.scheme}://{url.netloc}{url.path}" == f"{s3.endpoint}/{bucket}/ltx/media/{name}"
        assert 0 < int(parse_qs(url.query)["X-Amz-Expires"][0]) <= 60
        path, content_type = download(item["videoURL"], tmp_path / "clip.mp4")
        info = probe(path)
        assert content_type == "video/mp4" and (info.width, info.height, info.frames, info.fps) == (128, 72, 8, 8)
        assert (info.audio_codec, info.audio_rate, info.audio_channels) == ("aac", 24000, 2)
        assert [key for key in keys_in(s3, bucket) if "/media/" in key] == [f"ltx/media/{name}"]  # exactly once
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
        images = [key for key in keys_in(s3, bucket) if "/images/" in key]
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
        media_objects = [key for key in keys_in(s3, bucket) if "/media/" in key]
        assert f"ltx/media/{running['videoUUID']}.mp4" not in media_objects and len(media_objects) == 3
        # Nothing stays on the server's disk: no scratch file, no media or images folder.
        assert not any((data_dir / "scratch").iterdir())
        assert not (data_dir / "media").exists() and not (data_dir / "images").exists()

        say(f"waiting for the cleanup loop to delete the first clip, {submitted + 60 - time.time():.0f} s to its ttl")
        while f"ltx/media/{name}" in keys_in(s3, bucket) and time.time() < submitted + 120:
            time.sleep(1)
        gone_after = time.time() - submitted
        assert 60 <= gone_after < 120  # the cleanup loop deleted it once the ttl had passed, not before
        assert get_without_redirect(f"{server.base}/media/{name}")[0] == 404
        kept = sorted(f"ltx/media/{item['videoUUID']}.mp4" for item in (framed, later))
        assert [key for key in keys_in(s3, bucket) if "/media/" in key] == kept
    finally:
        server.stop()
        receiver.http.shutdown()
