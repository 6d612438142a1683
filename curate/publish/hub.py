"""Upload a staged repository to the Hub in one commit, or say that nothing changed."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from curate.errors import PublishError

RETRY_STATUS = {429, 500, 502, 503, 504}
T = TypeVar("T")


@dataclass(frozen=True)
class Published:
    """What an upload did."""

    repo_id: str
    revision: str
    committed: bool  # False: the Hub already had exactly this content
    commit_url: str | None
    added: int
    deleted: int


def git_oid(path: Path) -> str:
    """The git blob id of a file, as the Hub reports it for files it stores in git."""
    data = path.read_bytes()
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def local_files(folder: Path) -> dict[str, Path]:
    return {p.relative_to(folder).as_posix(): p for p in sorted(folder.rglob("*")) if p.is_file()}


def remote_files(api: Any, repo_id: str, revision: str) -> dict[str, tuple[str, str | None]]:
    """{path: (git oid, lfs sha256)} of the files at a revision; empty for a new repository."""
    from huggingface_hub.errors import EntryNotFoundError, RevisionNotFoundError

    try:
        entries = api.list_repo_tree(
            repo_id, repo_type="dataset", revision=revision, recursive=True
        )
        found = {}
        for entry in entries:
            if getattr(entry, "blob_id", None) is None:
                continue  # a folder
            lfs = getattr(entry, "lfs", None)
            found[entry.path] = (entry.blob_id, getattr(lfs, "sha256", None) if lfs else None)
        return found
    except (EntryNotFoundError, RevisionNotFoundError):
        return {}


def unchanged(path: Path, remote: tuple[str, str | None]) -> bool:
    oid, lfs_sha = remote
    return (lfs_sha is not None and lfs_sha == sha256(path)) or oid == git_oid(path)


def with_retries(call: Callable[[], T], what: str, attempts: int = 5, base_s: float = 1.0) -> T:
    """Run a Hub call, retrying rate limits and server errors with backoff; a commit either
    lands whole or not at all, so retrying it leaves no partial state."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    for attempt in range(attempts):
        try:
            return call()
        except OfflineModeIsEnabled:
            raise PublishError(f"{what}: HF_HUB_OFFLINE is set (unset it, or --dry-run)") from None
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status not in RETRY_STATUS or attempt == attempts - 1:
                raise PublishError(f"{what}: HTTP {status} ({_first_line(exc)})") from None
        except Exception as exc:  # the HTTP client's own exception tree varies by version
            if not _is_transport(exc):
                raise
            if attempt == attempts - 1:
                raise PublishError(f"{what}: cannot reach the Hub ({_first_line(exc)})") from None
        time.sleep(base_s * 2**attempt * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _is_transport(exc: Exception) -> bool:
    """A connection failure (refused, reset, timed out), whichever HTTP library raised it."""
    names = {kind.__name__ for kind in type(exc).__mro__}
    return isinstance(exc, OSError) or bool(names & {"TransportError", "ConnectionError"})


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__


@dataclass(frozen=True)
class Landed:
    """What one commit did: whether it was made, its address, the files it added or removed."""

    committed: bool
    commit_url: str | None
    added: int
    deleted: int


def changes(api: Any, repo_id: str, branch: str, ours: dict[str, Path]) -> tuple[Any, Any]:
    """The adds and deletes that make the branch hold exactly our files."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    theirs = remote_files(api, repo_id, branch)
    adds = [
        CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(path))
        for name, path in ours.items()
        if name not in theirs or not unchanged(path, theirs[name])
    ]
    deletes = [CommitOperationDelete(path_in_repo=name) for name in theirs if name not in ours]
    return adds, deletes


def commit_folder(
    api: Any, repo_id: str, branch: str, ours: dict[str, Path], message: str, base_s: float
) -> Landed:
    """One commit of what differs. Before each retry the branch is listed again: a commit
    whose reply was lost may have landed, and sending it twice would make two commits."""
    where = f"{repo_id}@{branch}"
    adds, deletes = with_retries(
        lambda: changes(api, repo_id, branch, ours), f"list {where}", base_s=base_s
    )
    if not (adds or deletes):
        return Landed(False, None, 0, 0)
    attempt = {"n": 0}

    def send() -> str | None:
        if attempt["n"]:
            still = changes(api, repo_id, branch, ours)
            if not (still[0] or still[1]):
                return None  # the earlier attempt landed; only its reply was lost
        attempt["n"] += 1
        info = api.create_commit(
            repo_id,
            operations=[*adds, *deletes],
            repo_type="dataset",
            revision=branch,
            commit_message=message,
        )
        return str(info.commit_url)

    url = with_retries(send, f"commit to {where}", base_s=base_s)
    return Landed(True, url, len(adds), len(deletes))


def upload(
    folder: Path,
    repo_id: str,
    *,
    private: bool,
    revision: str | None = None,
    tag: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    message: str = "Publish with curate",
    retry_base_s: float = 1.0,
) -> Published:
    """Create the repository if needed and commit the folder's content in one commit,
    deleting files the folder no longer has; no commit when nothing changed."""
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)

    def retried(call: Callable[[], T], what: str) -> T:
        return with_retries(call, what, base_s=retry_base_s)

    retried(
        lambda: api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True),
        f"create {repo_id}",
    )
    branch = revision or "main"
    if revision:
        retried(
            lambda: api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True),
            f"create branch {revision}",
        )
    ours = local_files(folder)
    landed = commit_folder(api, repo_id, branch, ours, message, retry_base_s)
    if tag:
        retried(
            lambda: api.create_tag(
                repo_id, tag=tag, repo_type="dataset", revision=branch, exist_ok=True
            ),
            f"tag {tag}",
        )
    return Published(
        repo_id, branch, landed.committed, landed.commit_url, landed.added, landed.deleted
    )
