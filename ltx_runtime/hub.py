"""Weights from the Hugging Face Hub: what `ltx-runtime weights lock`, `pull` and `verify` do.

- `lock_entry` lists each source of a weights.lock entry on the hub (at its pinned commit, or at the head of its ref
  when none is pinned yet) and writes the commit and every file its include patterns match, with size and sha256.
- `pull` downloads exactly the locked files at the locked commits into ROOT/<folder>, hashes each one, deletes and
  refuses a file whose size or sha256 differs from the lock, and records into the lock the ones it does not know yet
  (trust on first use), so that every later pull and verify checks them.
- `verify` re-hashes a model folder against the lock, without the network.

Every hub access goes through huggingface_hub, which reads HF_ENDPOINT, HF_TOKEN (or the token saved by
`hf auth login`) and HF_HUB_OFFLINE itself.
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, ModelInfo, constants, get_token, hf_hub_download
from huggingface_hub.errors import (
    GatedRepoError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from .weights import LockedFile, LockedSource, LockEntry, WeightsError, read_lock_data, write_lock_data

COMMIT = re.compile(r"[0-9a-f]{40}")
Log = Callable[[str], None]


@dataclass(frozen=True)
class FileCheck:
    local_path: str
    problem: str | None
    """None when the file matches the lock; else what is wrong with it."""


def model_folder(root: Path, entry: LockEntry) -> Path:
    return Path(root).expanduser() / entry.folder


def sha256_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def lock_entry(entry: LockEntry, lock_path: Path, log: Log) -> None:
    """List `entry`'s sources on the hub and rewrite them in the lock: commit, files, sizes, sha256; mark it complete.

    A pinned commit stays; a source without one gets the commit at the head of its ref. The hub lists a sha256 for
    LFS files only: other files (configs, small JSON) keep a hash `pull` recorded at the same commit, else get null.
    """
    _require_online()
    api = HfApi()
    locked = []
    for source in entry.sources:
        revision = source.revision or source.ref
        try:
            info = api.model_info(source.repo, revision=revision, files_metadata=True)
        except Exception as error:  # noqa: BLE001 (huggingface_hub's errors and its HTTP client's, each made one line)
            raise _hub_error(error, source.repo, revision) from None
        files = _listed_files(entry.model_id, source, info, log)
        total = sum(item["size"] for item in files)
        log(f"{entry.model_id}: {source.repo} at {info.sha}: {len(files)} files, {_human(total)}")
        locked.append((info.sha, files))
    data = read_lock_data(lock_path)
    raw_entry = data["models"][entry.model_id]
    for raw_source, (commit, files) in zip(raw_entry["sources"], locked):
        raw_source["revision"] = commit
        raw_source["files"] = files
    raw_entry["complete"] = True
    write_lock_data(lock_path, data)


def _listed_files(model_id: str, source: LockedSource, info: ModelInfo, log: Log) -> list[dict]:
    """The files of `source` in the hub's listing `info`, as lock items; changes from what the lock said are logged."""
    listing = {sibling.rfilename: sibling for sibling in info.siblings or ()}
    paths = set()
    for pattern in source.include or tuple(item.path for item in source.files):
        matched = fnmatch.filter(listing, pattern)
        if not matched:
            raise WeightsError(f"{model_id}: {pattern!r} matches no file of {source.repo} at {info.sha}")
        paths.update(matched)
    known = {item.path: item for item in source.files}
    files = []
    for path in sorted(paths):
        sibling, old = listing[path], known.get(path)
        size = sibling.lfs.size if sibling.lfs else sibling.size
        sha256 = sibling.lfs.sha256 if sibling.lfs else None
        if old is not None:
            if sha256 is None and info.sha == source.revision:
                sha256 = old.sha256
            for name, before, now in (("size", old.size, size), ("sha256", old.sha256, sha256)):
                if before is not None and now is not None and before != now:
                    log(f"{model_id}: {source.repo} {path}: {name} was {before} in the lock, is {now} at {info.sha}")
        files.append({"path": path, "size": size, "sha256": sha256})
    return files


def pull(entry: LockEntry, root: Path, lock_path: Path, log: Log) -> Path:
    """Download `entry`'s files into its folder under `root`, check each against the lock, and return the folder.

    hf_hub_download skips a file already downloaded at the same commit and resumes a transfer cut off mid-file.
    """
    _require_pullable(entry)
    _require_online()
    folder = model_folder(root, entry)
    count = len(entry.files)
    number = 0
    for source_index, source in enumerate(entry.sources):
        for file_index, item in enumerate(source.files):
            number += 1
            log(f"[{number}/{count}] {source.repo} {item.path} ({_human(item.size)})")
            try:
                path = hf_hub_download(source.repo, item.path, revision=source.revision, local_dir=folder / source.into)
            except Exception as error:  # noqa: BLE001 (huggingface_hub's errors and its HTTP client's, each made one line)
                raise _hub_error(error, source.repo, source.revision, item.path) from None
            path = Path(path)
            size, sha256 = path.stat().st_size, sha256_of(path)
            problem = _mismatch(item, size, sha256)
            if problem is not None:
                path.unlink()
                raise WeightsError(
                    f"refused {item.local_path} ({source.repo} {item.path} at {source.revision}): it {problem}. "
                    "Deleted it; run pull again to download it again, and if it is refused again, the hub serves "
                    "other bytes than weights.lock pins"
                )
            if item.size is None or item.sha256 is None:
                _record(lock_path, entry.model_id, source_index, file_index, size, sha256)
                log(f"    recorded size {size} and sha256 {sha256} in {lock_path} (trust on first use)")
    return folder


def verify(entry: LockEntry, root: Path) -> Iterator[FileCheck]:
    """Check every locked file of `entry`'s folder under `root`: present, and of the locked size and sha256."""
    folder = model_folder(root, entry)
    for item in entry.files:
        path = folder / item.local_path
        if not path.is_file():
            yield FileCheck(item.local_path, "missing")
            continue
        problem = _mismatch(item, path.stat().st_size, sha256_of(path))
        if problem is None and item.sha256 is None:
            problem = "unverified (hash not in lock)"
        yield FileCheck(item.local_path, problem)


def _mismatch(item: LockedFile, size: int, sha256: str) -> str | None:
    if item.size is not None and size != item.size:
        return f"is {size} bytes, weights.lock says {item.size}"
    if item.sha256 is not None and sha256 != item.sha256:
        return f"has sha256 {sha256}, weights.lock says {item.sha256}"
    return None


def _record(lock_path: Path, model_id: str, source_index: int, file_index: int, size: int, sha256: str) -> None:
    data = read_lock_data(lock_path)
    item = data["models"][model_id]["sources"][source_index]["files"][file_index]
    item["size"], item["sha256"] = size, sha256
    write_lock_data(lock_path, data)


def _require_pullable(entry: LockEntry) -> None:
    reasons = [] if entry.complete else ["its file list is partial"]
    unpinned = [source.repo for source in entry.sources if not COMMIT.fullmatch(source.revision or "")]
    reasons += [f"{repo} has no pinned commit" for repo in dict.fromkeys(unpinned)]  # each repository once
    if reasons:
        raise WeightsError(
            f"the weights.lock entry of {entry.model_id} cannot be pulled yet: {'; '.join(reasons)}. "
            f"Run `ltx-runtime weights lock {entry.model_id}` on a machine that reaches the hub first"
        )


def _require_online() -> None:
    if constants.is_offline_mode():
        raise WeightsError("HF_HUB_OFFLINE is set, and this command needs the hub: unset it for this command")


def _hub_error(error: Exception, repo: str, revision: str, path: str | None = None) -> WeightsError:
    what = f"{repo} {path} at {revision}" if path else f"{repo} at {revision}"
    if isinstance(error, GatedRepoError):
        token = "a token is set, but its account has no access yet" if get_token() else "no token is set"
        return WeightsError(
            f"{repo} is gated: accept its licence at {constants.ENDPOINT}/{repo} with your Hugging Face account, "
            f"then set HF_TOKEN to a read token of that account ({token})"
        )
    if isinstance(error, RepositoryNotFoundError):
        return WeightsError(f"{repo} not found on {constants.ENDPOINT}, or private and HF_TOKEN gives no access to it")
    if isinstance(error, RevisionNotFoundError):
        return WeightsError(f"{repo} has no revision {revision}")
    if isinstance(error, RemoteEntryNotFoundError):
        return WeightsError(f"{repo} has no file {path} at {revision}")
    if isinstance(error, LocalEntryNotFoundError):  # how hf_hub_download reports a hub it could not reach
        error = error.__cause__ or error
        return WeightsError(f"cannot reach the hub at {constants.ENDPOINT} for {what}: {_first_line(error)}")
    return WeightsError(f"{what}: {type(error).__name__}: {_first_line(error)}")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


def _human(size: int | None) -> str:
    return "size unknown" if size is None else f"{size / 1e6:,.1f} MB"
