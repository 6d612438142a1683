"""FakeHubServer: a local stand-in for the Hugging Face Hub's HTTP API (not the Hub: it cannot
be reached here), enough of it for the real `huggingface_hub` client to create a dataset
repository, branches and tags, list a revision's files, and commit files in one commit.

Every file is stored as a regular git file (the preupload answer says `regular`), so no LFS or
Xet transfer is involved. Commits are atomic: a commit answered with an injected error
changes nothing. Each request's headers are kept so tests can look for leaked secrets.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

from tests.loopback import LoopbackServer, QuietHandler


def blob_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data, usedforsecurity=False).hexdigest()


class FakeHubServer(LoopbackServer):
    def __init__(self) -> None:
        super().__init__(FakeHubHandler)
        self.repos: dict[str, dict[str, dict[str, bytes]]] = {}  # repo -> branch -> files
        self.tags: dict[str, dict[str, str]] = {}
        self.commits: list[dict[str, Any]] = []  # every commit that landed
        self.fail_commits: list[int] = []  # statuses to answer the next commits with
        self.lose_replies: list[int] = []  # statuses to answer commits that land anyway
        self.requests: list[tuple[str, str, str]] = []  # (method, path, headers + body)

    @property
    def url(self) -> str:
        return self.root


ROUTES = [
    ("POST", re.compile(r"^/api/validate-yaml$"), "validate_yaml"),
    ("POST", re.compile(r"^/api/repos/create$"), "create_repo"),
    ("GET", re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)/?.*$"), "tree"),
    (
        "POST",
        re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)$"),
        "preupload",
    ),
    ("POST", re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)$"), "commit"),
    ("POST", re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/branch/(?P<rev>[^/]+)$"), "branch"),
    ("POST", re.compile(r"^/api/datasets/(?P<repo>[^/]+/[^/]+)/tag/(?P<rev>[^/]+)$"), "tag"),
]


class FakeHubHandler(QuietHandler):
    server: FakeHubServer

    def do_GET(self) -> None:
        self.route("GET")

    def do_POST(self) -> None:
        self.route("POST")

    def route(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        with self.server.lock:
            self.server.requests.append((method, path, str(self.headers) + body.decode("latin-1")))
        for verb, pattern, name in ROUTES:
            match = pattern.match(path)
            if verb == method and match:
                with self.server.lock:
                    return getattr(self, name)(body, **match.groupdict())  # type: ignore[no-any-return]
        return self.reply(404, {"error": f"no route {method} {path}"})

    def create_repo(self, body: bytes) -> None:
        data = json.loads(body)
        repo = (
            f"{data['organization']}/{data['name']}" if data.get("organization") else data["name"]
        )
        if repo in self.server.repos:
            return self.reply(
                409,
                {
                    "error": "You already created this dataset repo",
                    "url": f"{self.server.url}/datasets/{repo}",
                },
            )
        self.server.repos[repo] = {"main": {}}
        return self.reply(200, {"url": f"{self.server.url}/datasets/{repo}"})

    def validate_yaml(self, body: bytes) -> None:
        import yaml

        content = json.loads(body)["content"]
        header = content.split("---")[1] if content.startswith("---") else ""
        try:
            yaml.safe_load(header)
        except yaml.YAMLError as exc:
            return self.reply(400, {"error": f"invalid YAML: {exc}"})
        return self.reply(200, {"errors": [], "warnings": []})

    def branch_files(self, repo: str, rev: str) -> dict[str, bytes] | None:
        branches = self.server.repos.get(repo)
        if branches is None:
            return None
        return branches.get(rev) if rev in branches else None

    def tree(self, body: bytes, repo: str, rev: str) -> None:
        files = self.branch_files(repo, rev)
        if files is None:
            return self.reply(
                404, {"error": "Revision not found"}, {"X-Error-Code": "RevisionNotFound"}
            )
        listing = [
            {"type": "file", "oid": blob_oid(data), "size": len(data), "path": name}
            for name, data in sorted(files.items())
        ]
        return self.reply(200, listing)

    def preupload(self, body: bytes, repo: str, rev: str) -> None:
        files = self.branch_files(repo, rev) or {}
        asked = json.loads(body)["files"]
        return self.reply(
            200,
            {
                "files": [
                    {
                        "path": f["path"],
                        "uploadMode": "regular",
                        "shouldIgnore": False,
                        "oid": blob_oid(files[f["path"]]) if f["path"] in files else None,
                    }
                    for f in asked
                ]
            },
        )

    def commit(self, body: bytes, repo: str, rev: str) -> None:
        if self.server.fail_commits:
            status = self.server.fail_commits.pop(0)
            return self.reply(status, {"error": "injected failure"})
        files = self.branch_files(repo, rev)
        if files is None:
            return self.reply(
                404, {"error": "Revision not found"}, {"X-Error-Code": "RevisionNotFound"}
            )
        staged = dict(files)
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        for line in lines:
            value = line["value"]
            if line["key"] == "file":
                staged[value["path"]] = base64.b64decode(value["content"])
            elif line["key"] in ("deletedFile", "deletedFolder"):
                staged.pop(value["path"], None)
        self.server.repos[repo][rev] = staged  # the whole commit lands at once
        oid = hashlib.sha1(body, usedforsecurity=False).hexdigest()
        self.server.commits.append({"repo": repo, "revision": rev, "oid": oid, "lines": lines})
        if self.server.lose_replies:  # the commit landed; the client hears only an error
            return self.reply(self.server.lose_replies.pop(0), {"error": "reply lost"})
        return self.reply(
            200, {"commitUrl": f"{self.server.url}/datasets/{repo}/commit/{oid}", "commitOid": oid}
        )

    def branch(self, body: bytes, repo: str, rev: str) -> None:
        branches = self.server.repos.get(repo)
        if branches is None:
            return self.reply(
                404, {"error": "Repository not found"}, {"X-Error-Code": "RepoNotFound"}
            )
        if rev in branches:
            return self.reply(409, {"error": "Reference already exists"})
        branches[rev] = dict(branches["main"])
        return self.reply(200, {})

    def tag(self, body: bytes, repo: str, rev: str) -> None:
        tag = json.loads(body)["tag"]
        tags = self.server.tags.setdefault(repo, {})
        if tag in tags:
            return self.reply(409, {"error": "Tag already exists"})
        tags[tag] = rev
        return self.reply(200, {})

    def reply(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        super().reply(status, json.dumps(data).encode(), headers)
