"""Where result videos and first-frame images are kept: the data folder (the default) or an S3-compatible bucket.

Both stores speak in names relative to their root: `media/<videoUUID>.<ext>` for results and `images/<file>` for
uploaded and fetched images (`media_key`, `image_key`). The worker encodes into a local scratch file and puts it; the
server hands out `url(name, ttl)`: its own `/media/...` and `/images/...` URLs for the local store, presigned GET URLs
for S3.

`open_media(settings)` picks the store from `LTX_MEDIA_URL`: unset, the folders `media/` and `images/` in the data
folder; `s3://bucket/prefix`, that bucket through boto3, at `LTX_S3_ENDPOINT_URL` for S3-compatible servers (MinIO,
Ceph, moto...), with credentials the way boto3 reads them (`AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`,
`AWS_PROFILE`, an instance role). The endpoint is the operator's, never a user's, so it does not go through the SSRF
guard (`server/media/netguard.py`), which would refuse a private or loopback S3 server.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from ..settings import Settings

NAME = re.compile(r"(media|images)/[0-9A-Za-z][0-9A-Za-z._-]*")
PROBE_BYTES = 4096
"""What `probe_writable` writes: one block, which a full disk refuses."""
MULTIPART_BYTES = 8 * 1024 * 1024
"""Files above this size are uploaded to S3 in parts of this size (boto3's default; S3's smallest part is 5 MiB)."""
MAX_PRESIGN_SECONDS = 7 * 24 * 3600
"""The longest a SigV4 presigned URL may be valid; a longer ttl gets a URL valid this long (getResponse signs anew)."""


class MediaNotFound(Exception):
    """No object of this name in the store."""


def media_key(file_name: str) -> str:
    return f"media/{file_name}"


def image_key(file_name: str) -> str:
    return f"images/{file_name}"


def check_name(name: str) -> str:
    """Refuse anything but a plain file name under media/ or images/ (no path traversal, nothing else in the root)."""
    if not NAME.fullmatch(name) or ".." in name:
        raise ValueError(f"not a media store name: {name!r}")
    return name


class MediaStore(Protocol):
    """What the server and the workers need from a media store."""

    def put_file(self, name: str, local_path: Path, content_type: str) -> None:
        """Store the file's bytes under `name`. The local store moves the file into place (a rename); the caller
        removes `local_path` if it is still there."""

    def put_bytes(self, name: str, data: bytes, content_type: str) -> None: ...

    def read_bytes(self, name: str) -> bytes:
        """The object's bytes; raises `MediaNotFound`."""

    def download(self, name: str, local_path: Path) -> None:
        """A local copy of the object at `local_path` (which the caller removes); raises `MediaNotFound`."""

    def url(self, name: str, ttl_seconds: float) -> str:
        """A URL a client can GET the object from, valid for `ttl_seconds` (S3; the local store's never expires)."""

    def delete(self, name: str) -> None:
        """Remove the object; no error when it is already gone."""

    def exists(self, name: str) -> bool: ...


class LocalMediaStore:
    """The folders `media/` and `images/` under `root` (the data folder), served by this server at the same paths."""

    def __init__(self, root: Path, base_url: str):
        self.root = root
        self.base_url = base_url.rstrip("/")

    def path(self, name: str) -> Path:
        return self.root / check_name(name)

    def put_file(self, name: str, local_path: Path, content_type: str) -> None:
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(local_path, target)  # atomic: a reader sees the whole file or none
        except OSError as error:
            if error.errno != errno.EXDEV:
                raise
            self._write(target, lambda partial: shutil.copyfile(local_path, partial))  # media on another disk

    def put_bytes(self, name: str, data: bytes, content_type: str) -> None:
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._write(target, lambda partial: partial.write_bytes(data))

    @staticmethod
    def _write(target: Path, write) -> None:
        """Write a hidden partial file beside `target`, then rename it into place; a failed write (a full disk)
        leaves nothing behind."""
        partial = target.with_name(f".{target.name}.partial")
        try:
            write(partial)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise

    def read_bytes(self, name: str) -> bytes:
        try:
            return self.path(name).read_bytes()
        except FileNotFoundError:
            raise MediaNotFound(name) from None

    def download(self, name: str, local_path: Path) -> None:
        source = self.path(name)
        if not source.is_file():
            raise MediaNotFound(name)
        try:
            os.link(source, local_path)  # no copy: the data folder is one file system, as a rule
        except OSError:
            shutil.copyfile(source, local_path)

    def url(self, name: str, ttl_seconds: float) -> str:
        return f"{self.base_url}/{check_name(name)}"

    def delete(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()


class S3MediaStore:
    """A bucket (and key prefix) of S3 or an S3-compatible server, through boto3; thread-safe."""

    def __init__(self, bucket: str, prefix: str = "", endpoint_url: str | None = None,
                 multipart_bytes: int = MULTIPART_BYTES, public_endpoint_url: str | None = None):  # fmt: skip
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        # Path-style addressing for S3-compatible servers, whose buckets are rarely DNS names; SigV4 for presigning.
        addressing = {"addressing_style": "path"} if endpoint_url else {}
        config = Config(signature_version="s3v4", s3=addressing)
        self.client = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        # Presigned URLs name the address clients reach the server at, which may not be the one this host uses (a
        # MinIO container's service name); signing needs no connection to it.
        self.signer = (boto3.client("s3", endpoint_url=public_endpoint_url, config=config) if public_endpoint_url
                       else self.client)  # fmt: skip
        self.transfer = TransferConfig(multipart_threshold=multipart_bytes, multipart_chunksize=multipart_bytes)

    def key(self, name: str) -> str:
        check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def put_file(self, name: str, local_path: Path, content_type: str) -> None:
        self.client.upload_file(
            str(local_path), self.bucket, self.key(name), ExtraArgs={"ContentType": content_type}, Config=self.transfer
        )

    def put_bytes(self, name: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self.key(name), Body=data, ContentType=content_type)

    def read_bytes(self, name: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(name))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise MediaNotFound(name) from None

    def download(self, name: str, local_path: Path) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.download_file(self.bucket, self.key(name), str(local_path), Config=self.transfer)
        except ClientError as error:
            if _is_missing(error):
                raise MediaNotFound(name) from None
            raise

    def url(self, name: str, ttl_seconds: float) -> str:
        return self.signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self.key(name)},
            ExpiresIn=max(1, min(MAX_PRESIGN_SECONDS, int(ttl_seconds))),
        )  # fmt: skip

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(name))

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(name))
        except ClientError as error:
            if _is_missing(error):
                return False
            raise
        return True


def _is_missing(error) -> bool:
    return error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound")


def open_media(settings: Settings) -> MediaStore:
    if not settings.media_url:
        return LocalMediaStore(settings.data_dir, settings.base_url)
    url = urlsplit(settings.media_url)  # s3://bucket/prefix, as Settings checked
    return S3MediaStore(url.netloc, url.path, settings.s3_endpoint_url,
                        public_endpoint_url=settings.s3_public_endpoint_url)  # fmt: skip


DISK_FULL_MESSAGES = ("No space left on device", "Disk quota exceeded", "File too large", "database or disk is full")
"""How a full disk reads in an error that is not an OSError: ffmpeg's stderr, SQLite's and Postgres' errors."""


def disk_full(error: BaseException) -> bool:
    """Whether a write failed because its disk is full."""
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
    return any(message in str(error) for message in DISK_FULL_MESSAGES)


def probe_writable(folder: Path) -> None:
    """Raise OSError unless `folder` takes a small file now (a full disk, a read-only mount, a missing folder that
    cannot be made); the probe file is removed."""
    folder.mkdir(parents=True, exist_ok=True)
    probe = folder / f".probe-{os.getpid()}-{threading.get_ident()}"
    try:
        with open(probe, "wb") as file:
            file.write(b"\0" * PROBE_BYTES)
    finally:
        probe.unlink(missing_ok=True)


def scratch_file(settings: Settings, worker_id: str, file_name: str) -> Path:
    """Where a worker encodes a result before putting it in the media store: named after the worker (without its node
    prefix), so that the supervisor can remove what a dead worker left ("*" for every worker)."""
    return settings.scratch_dir / f"{worker_id.rsplit('/', 1)[-1]}-{file_name}.partial"
