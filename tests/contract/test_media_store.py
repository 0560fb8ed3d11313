"""The media store (server/media/store.py): one contract, two stores — the local data folder, and S3 through boto3
against a real S3 API server (moto in server mode, its own process on a loopback port, spoken to over HTTP). A real
server that keeps its media in S3: e2e/test_media_on_s3.py."""

from __future__ import annotations

import os
import time
import urllib.request
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import ValidationError

from server.ops.loops import remove_expired_media
from server.ops.routes import media_router
from server.media.store import LocalMediaStore, MediaNotFound, S3MediaStore, image_key, media_key, open_media
from server.settings import Settings
from server.store import open_store
from server.tasks.service import TaskService

MIB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def store(request, tmp_path):
    if request.param == "local":
        return LocalMediaStore(tmp_path / "data", "http://media.example:8000")
    s3 = request.getfixturevalue("s3")
    return S3MediaStore(s3.new_bucket(), "some/prefix", s3.endpoint)


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
    bucket = s3.new_bucket()
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
    bucket = s3.new_bucket()
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
    assert s3.keys(bucket) == ["media/large.mp4", "media/small.mp4"]


def test_open_media_reads_the_settings(s3, tmp_path):
    local = open_media(Settings(data_dir=tmp_path, port=9001))
    assert isinstance(local, LocalMediaStore) and local.path(media_key("a.mp4")) == tmp_path / "media" / "a.mp4"
    assert local.url(media_key("a.mp4"), 60) == "http://127.0.0.1:9001/media/a.mp4"
    bucket = s3.new_bucket()
    remote = open_media(Settings(data_dir=tmp_path, media_url=f"s3://{bucket}/runs/one/", s3_endpoint_url=s3.endpoint))
    remote.put_bytes(media_key("a.mp4"), b"x", "video/mp4")
    assert s3.keys(bucket) == ["runs/one/media/a.mp4"]
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
    bucket = s3.new_bucket()
    media = S3MediaStore(bucket, "x", s3.endpoint)
    tasks = open_store(f"sqlite:///{tmp_path / 'tasks.sqlite3'}")
    record = tasks.submit("k", str(uuid.uuid4()), "videoInference", {}, {}, [1, 2])
    tasks.claim("w", 30)
    names = [f"{result.video_uuid}.mp4" for result in record.results]
    for index, ttl in ((0, -1), (1, 3600)):
        media.put_bytes(media_key(names[index]), b"video", "video/mp4")
        tasks.complete_result(record.id, "w", index, names[index], 1.0, 0.0, time.time() + ttl, [])
    assert remove_expired_media(media, tasks, time.time()) == [record.results[0].video_uuid]
    assert s3.keys(bucket) == [f"x/media/{names[1]}"]
    assert tasks.result_by_video(record.results[0].video_uuid)[0].file_name is None


@pytest.mark.parametrize("host_clock_ahead", [20 * 60, -20 * 60])
def test_presigned_urls_last_the_rest_of_the_ttl_on_the_database_clock(s3, tmp_path, monkeypatch, host_clock_ahead):
    """A videoURL, and the /media redirect, are valid for what is left of the result's ttl as the database measures
    it (the ttl began on that clock), whatever this host's clock says."""
    settings = Settings(data_dir=tmp_path, media_url=f"s3://{s3.new_bucket()}/x", s3_endpoint_url=s3.endpoint)
    media = open_media(settings)
    tasks = open_store(f"sqlite:///{tmp_path / 'tasks.sqlite3'}")
    record = tasks.submit("k", str(uuid.uuid4()), "videoInference", {}, {}, [1])
    tasks.claim("w", 30)
    name = f"{record.results[0].video_uuid}.mp4"
    media.put_bytes(media_key(name), b"video", "video/mp4")
    tasks.complete_result(record.id, "w", 0, name, 1.0, 0.0, tasks.now() + 3600, [])
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + host_clock_ahead)
    app = FastAPI()
    app.include_router(media_router(settings, tasks, media))
    with TestClient(app, follow_redirects=False) as client:
        redirect = client.get(f"/media/{name}")
    video_url = TaskService(settings, tasks, media).media_url(tasks.get_by_id(record.id).results[0])
    for url in (video_url, redirect.headers["location"]):
        assert 3500 <= int(parse_qs(urlsplit(url).query)["X-Amz-Expires"][0]) <= 3600
