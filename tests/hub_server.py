"""A small Hub-compatible HTTP server for hermetic tests (standard library only).

It implements the part of the Hub's HTTP API that `huggingface_hub` 2.4 calls to create repos, commit files (regular
and LFS), list trees and download files, which is what `upload_folder`/`create_commit`, `DatasetDict.push_to_hub`,
`from_pretrained`, `AutoPeftModelForCausalLM` and `load_dataset` need. Point a process at it with
`HF_ENDPOINT=<server.endpoint>`, a token it knows in `HF_TOKEN`, and `HF_HUB_DISABLE_XET=1` (there is no Xet storage
here, so uploads take the classic LFS route).

    server = HubServer(tokens={"hf_test": "tester"})
    server.start()            # 127.0.0.1, a free port, files in a temporary folder
    ...                       # HF_ENDPOINT=server.endpoint HF_TOKEN=hf_test python ...
    server.fail["commit"] = 500   # make every commit fail (the failure switch; "commit:USER/NAME" for one repo)
    server.stop()

Run it by hand with `python tests/hub_server.py` to poke at it with the `hf` CLI.

What it keeps: repos in memory (type, id, visibility, commits), blobs on disk by sha256. Every commit is a full
snapshot, so any revision that is `main` or a commit sha of the repo resolves. Not implemented: branches other than
`main`, pull requests, Xet, gated repos.
"""

import base64
import hashlib
import json
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

# The Hub stores these through LFS (its default .gitattributes), and anything above 10 MB.
LFS_SUFFIXES = (
    ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".h5", ".msgpack", ".onnx", ".gguf", ".parquet", ".arrow",
    ".npy", ".npz", ".pkl", ".pickle", ".zip", ".gz", ".tar", ".zst", ".model",
)
LFS_MIN_SIZE = 10 * 1024 * 1024
DEFAULT_GITATTRIBUTES = "".join(f"*{suffix} filter=lfs diff=lfs merge=lfs -text\n" for suffix in LFS_SUFFIXES)
REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/"}


def git_blob_sha1(data: bytes) -> str:
    """The git object id of a blob, as the Hub reports for regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def is_lfs_path(path: str, size: int) -> bool:
    return path.endswith(LFS_SUFFIXES) or size >= LFS_MIN_SIZE


@dataclass(frozen=True)
class Blob:
    """One file of a snapshot: its bytes are `blob_dir/sha256`; `git_oid` is the id the Hub reports for it."""

    sha256: str
    size: int
    lfs: bool
    git_oid: str

    @classmethod
    def of(cls, sha256: str, size: int, lfs: bool, data: bytes | None = None) -> "Blob":
        # For LFS files git stores a pointer, so the git id is the pointer's; otherwise it is the content's.
        return cls(sha256, size, lfs, git_blob_sha1(lfs_pointer(sha256, size) if lfs else data))


@dataclass
class Commit:
    oid: str
    message: str
    date: str
    files: dict[str, Blob]


@dataclass
class Repo:
    type: str
    id: str
    private: bool
    created: str
    commits: list[Commit] = field(default_factory=list)

    @property
    def head(self) -> Commit:
        return self.commits[-1]

    def at(self, revision: str) -> Commit | None:
        """The snapshot at `main` or at a (possibly abbreviated) commit sha; None if unknown."""
        revision = unquote(revision)
        if revision == "main":
            return self.head
        if len(revision) >= 7:
            for commit in reversed(self.commits):
                if commit.oid.startswith(revision):
                    return commit
        return None


class HubError(Exception):
    """An error answer: HTTP status, message, and the X-Error-Code huggingface_hub maps to an exception class."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **extra):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.extra = status, message, code, headers or {}, extra


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubServer:
    """The server: state, routing, and a thread to serve from. See the module docstring."""

    def __init__(self, tokens: dict[str, str] | None = None, root: str | Path | None = None):
        self.tokens = dict(tokens or {"hf_mathalign_test": "tester"})  # token -> user name
        self._tmp = None if root is not None else tempfile.mkdtemp(prefix="hub-server-")
        self.blob_dir = Path(root or self._tmp) / "blobs"
        self.blob_dir.mkdir(parents=True, exist_ok=True)
        self.repos: dict[tuple[str, str], Repo] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, for tests to inspect
        # Failure switch: route name, or "route:USER/NAME" for one repo -> the status to answer instead.
        self.fail: dict[str, int] = {}  # e.g. {"commit": 500} or {"commit:tester/broken": 503}
        self.lock = threading.RLock()
        self.httpd: ThreadingHTTPServer | None = None
        self.thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self, port: int = 0) -> "HubServer":
        server = self

        class Handler(HubRequestHandler):
            hub = server

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="hub-server", daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join(timeout=5)
            self.httpd = None
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)

    @property
    def endpoint(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # ---------------------------------------------------------------- state helpers (also handy in tests)
    def repo(self, repo_type: str, repo_id: str, user: str | None = None) -> Repo:
        """The repo, or a 404 RepoNotFound (also for a private repo the caller may not read, as the Hub does)."""
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user is None):
            raise HubError(404, f"Repository Not Found for url: {repo_type}s/{repo_id}.", "RepoNotFound")
        return repo

    def read_file(self, repo_type: str, repo_id: str, path: str, revision: str = "main") -> bytes:
        """The bytes of a file in a repo (for tests)."""
        blob = self.repos[(repo_type, repo_id)].at(revision).files[path]
        return (self.blob_dir / blob.sha256).read_bytes()

    def store_blob(self, data: bytes) -> str:
        sha256 = hashlib.sha256(data).hexdigest()
        target = self.blob_dir / sha256
        if not target.exists():
            partial = target.with_suffix(f".part{threading.get_ident()}")
            partial.write_bytes(data)
            partial.replace(target)
        return sha256

    def add_commit(self, repo: Repo, message: str, files: dict[str, Blob]) -> Commit:
        parent = repo.commits[-1].oid if repo.commits else ""
        listing = json.dumps(sorted((path, blob.sha256) for path, blob in files.items()))
        oid = hashlib.sha1(f"{parent}\n{message}\n{listing}\n{len(repo.commits)}".encode()).hexdigest()
        commit = Commit(oid=oid, message=message, date=now_iso(), files=files)
        repo.commits.append(commit)
        return commit

    def new_blob(self, path: str, data: bytes, force_lfs: bool | None = None) -> Blob:
        lfs = is_lfs_path(path, len(data)) if force_lfs is None else force_lfs
        return Blob.of(self.store_blob(data), len(data), lfs, data)


def _file_entry(path: str, blob: Blob, commit: Commit | None = None) -> dict:
    entry = {"type": "file", "oid": blob.git_oid, "size": blob.size, "path": path}
    if blob.lfs:
        entry["lfs"] = {"oid": blob.sha256, "size": blob.size, "pointerSize": len(lfs_pointer(blob.sha256, blob.size))}
    if commit is not None:
        entry["lastCommit"] = {"id": commit.oid, "title": commit.message, "date": commit.date}
    return entry


def _folder_entry(path: str, files: dict[str, Blob], commit: Commit | None = None) -> dict:
    inside = sorted((p, b.git_oid) for p, b in files.items() if p.startswith(path + "/"))
    entry = {"type": "directory", "oid": hashlib.sha1(json.dumps(inside).encode()).hexdigest(), "size": 0, "path": path}
    if commit is not None:
        entry["lastCommit"] = {"id": commit.oid, "title": commit.message, "date": commit.date}
    return entry


def _folders(files: dict[str, Blob]) -> set[str]:
    folders = set()
    for path in files:
        parts = path.split("/")[:-1]
        folders.update("/".join(parts[: i + 1]) for i in range(len(parts)))
    return folders


class HubRequestHandler(BaseHTTPRequestHandler):
    """Routes one request to a `route_*` method; every answer has a Content-Length so keep-alive stays in sync."""

    protocol_version = "HTTP/1.1"
    hub: HubServer  # set by HubServer.start

    # Routes: (method, regex on the unquoted-once path, name used by `HubServer.fail`).
    REPO = r"(?P<ns>[^/]+)/(?P<name>[^/]+)"
    API = r"/api/(?P<kind>models|datasets|spaces)/" + REPO
    ROUTES = [
        ("GET", r"/api/whoami-v2", "whoami"),
        ("GET", r"/api/agent-harnesses", "agent_harnesses"),
        ("POST", r"/api/repos/create", "create"),
        ("POST", r"/api/repos/delete", "delete"),
        ("POST", r"/api/validate-yaml", "validate_yaml"),
        ("GET", API + r"(?:/revision/(?P<rev>[^/]+))?", "repo_info"),
        ("POST", API + r"/preupload/(?P<rev>[^/]+)", "preupload"),
        ("POST", API + r"/commit/(?P<rev>[^/]+)", "commit"),
        ("GET", API + r"/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?", "tree"),
        ("POST", API + r"/paths-info/(?P<rev>[^/]+)", "paths_info"),
        ("GET", API + r"/refs", "refs"),
        ("GET", API + r"/commits/(?P<rev>[^/]+)", "commits"),
        ("POST", r"/(?P<prefix>datasets/|spaces/)?" + REPO + r"\.git/info/lfs/objects/batch", "lfs_batch"),
        ("PUT", r"/lfs-upload/(?P<sha256>[0-9a-f]{64})", "lfs_upload"),
        ("HEAD", r"/(?P<prefix>datasets/|spaces/)?" + REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
        ("GET", r"/(?P<prefix>datasets/|spaces/)?" + REPO + r"/resolve/(?P<rev>[^/]+)/(?P<path>.+)", "resolve"),
    ]
    COMPILED = [(method, re.compile(pattern + r"/?$"), name) for method, pattern, name in ROUTES]

    def log_message(self, format, *args):  # quiet: tests read `hub.requests` instead
        pass

    # ---------------------------------------------------------------- plumbing
    def do_GET(self):
        self.dispatch("GET")

    def do_HEAD(self):
        self.dispatch("HEAD")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):  # trailers
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # CRLF after each chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def dispatch(self, method: str) -> None:
        # Read the whole body first, even when the answer is an error: an unread body would be taken for the
        # next request on this keep-alive connection.
        self.body = self.read_body()
        split = urlsplit(self.path)
        self.query = parse_qs(split.query)
        path = split.path
        with self.hub.lock:
            self.hub.requests.append((method, path))
        try:
            for route_method, pattern, name in self.COMPILED:
                match = pattern.match(path)
                if match and route_method == method:
                    args = match.groupdict()
                    for key in (name, f"{name}:{args.get('ns')}/{args.get('name')}"):
                        if key in self.hub.fail:
                            raise HubError(self.hub.fail[key], f"Injected failure on {key} (test server).")
                    return getattr(self, f"route_{name}")(**args)
            raise HubError(404, f"No such endpoint on the test Hub server: {method} {path}")
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            self.send_json({"error": err.message, **err.extra}, status=err.status, headers=headers)

    def send_json(self, payload, status: int = 200, headers: dict | None = None) -> None:
        self.send_bytes(json.dumps(payload).encode(), status, {"Content-Type": "application/json", **(headers or {})})

    def send_bytes(self, data: bytes, status: int = 200, headers: dict | None = None, head_only: bool = False):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, str(value))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head_only and self.command != "HEAD":
            self.wfile.write(data)

    def user(self, required: bool = False) -> str | None:
        """The user the bearer token belongs to; 401 for a token the server does not know (or none if required)."""
        auth = self.headers.get("Authorization", "")
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else ""
        if token and token not in self.hub.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        if required and not token:
            raise HubError(401, "You must be authenticated to do this: pass a token.")
        return self.hub.tokens.get(token)

    def writable_repo(self, kind: str, ns: str, name: str) -> Repo:
        user = self.user(required=True)
        repo = self.hub.repo(REPO_TYPES[kind], f"{ns}/{name}", user)
        if ns != user:
            raise HubError(403, f"You don't have the rights to write to {repo.id}.")
        return repo

    def json_body(self) -> dict:
        try:
            return json.loads(self.body or b"{}")
        except ValueError:
            raise HubError(400, "Request body is not valid JSON.")

    # ---------------------------------------------------------------- routes
    def route_whoami(self):
        user = self.user(required=True)
        self.send_json(
            {
                "type": "user",
                "name": user,
                "fullname": user,
                "orgs": [],
                "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
            }
        )

    def route_agent_harnesses(self):  # huggingface_hub's best-effort agent detection: nothing registered here
        self.send_json({"standardEnvVars": [], "harnesses": {}})

    def route_create(self):
        user = self.user(required=True)
        payload = self.json_body()
        repo_type = payload.get("type") or "model"
        namespace = payload.get("organization") or user
        repo_id = f"{namespace}/{payload['name']}"
        if namespace != user:
            raise HubError(403, f"You don't have the rights to create a {repo_type} under the namespace {namespace!r}.")
        url = f"{self.hub.endpoint}/{URL_PREFIXES[repo_type]}{repo_id}"
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:
                # The Hub answers 409 with the url too; create_repo(exist_ok=True) reads it.
                raise HubError(409, "You already created this repo", url=url)
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            repo = Repo(type=repo_type, id=repo_id, private=private, created=now_iso())
            gitattributes = DEFAULT_GITATTRIBUTES.encode()
            self.hub.add_commit(
                repo, "initial commit", {".gitattributes": self.hub.new_blob(".gitattributes", gitattributes)}
            )
            self.hub.repos[(repo_type, repo_id)] = repo
        self.send_json({"url": url, "name": repo_id, "id": repo_id})

    def route_delete(self):
        user = self.user(required=True)
        payload = self.json_body()
        repo_id = f"{payload.get('organization') or user}/{payload['name']}"
        with self.hub.lock:
            if self.hub.repos.pop((payload.get("type") or "model", repo_id), None) is None:
                raise HubError(404, "Repository Not Found", "RepoNotFound")
        self.send_json({})

    def route_validate_yaml(self):
        self.json_body()
        self.send_json({"errors": [], "warnings": []})

    def route_repo_info(self, kind, ns, name, rev=None):
        repo = self.hub.repo(REPO_TYPES[kind], f"{ns}/{name}", self.user())
        commit = self.snapshot(repo, rev or "main")
        info = {
            "_id": hashlib.sha1(repo.id.encode()).hexdigest()[:24],
            "id": repo.id,
            "author": repo.id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": [{"rfilename": path} for path in sorted(commit.files)],
        }
        if repo.type == "model":
            info["modelId"] = repo.id
        self.send_json(info)

    def snapshot(self, repo: Repo, rev: str) -> Commit:
        commit = repo.at(rev)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {unquote(rev)}", "RevisionNotFound")
        return commit

    def route_preupload(self, kind, ns, name, rev):
        repo = self.writable_repo(kind, ns, name)
        head = self.snapshot(repo, rev)
        answers = []
        for item in self.json_body().get("files", []):
            lfs = is_lfs_path(item["path"], int(item.get("size") or 0))
            existing = head.files.get(item["path"])
            oid = None
            if existing is not None:
                oid = existing.sha256 if lfs else existing.git_oid
            answers.append(
                {"path": item["path"], "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False, "oid": oid}
            )
        self.send_json({"files": answers, "commitOid": head.oid})

    def route_commit(self, kind, ns, name, rev):
        repo = self.writable_repo(kind, ns, name)
        if unquote(rev) != "main":
            raise HubError(400, "The test Hub server only commits to 'main'.", "RevisionNotFound")
        lines = [json.loads(line) for line in self.body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "A commit starts with a header line.")
        header = lines[0]["value"]
        with self.hub.lock:
            parent = header.get("parentCommit")
            if parent and not repo.head.oid.startswith(parent):
                raise HubError(412, f"Parent commit {parent} is not the head of main ({repo.head.oid}).")
            files = dict(repo.head.files)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value["path"]
                if key == "file":
                    data = (
                        base64.b64decode(value["content"])
                        if value.get("encoding") == "base64"
                        else value["content"].encode()
                    )
                    files[path] = self.hub.new_blob(path, data, force_lfs=False)
                elif key == "lfsFile":
                    blob_path = self.hub.blob_dir / value["oid"]
                    if not blob_path.exists():
                        raise HubError(422, f"LFS object {value['oid']} of {path} was never uploaded.")
                    files[path] = Blob.of(value["oid"], blob_path.stat().st_size, True)
                elif key == "deletedFile":
                    if files.pop(path, None) is None:
                        raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
                elif key == "deletedFolder":
                    prefix = path.rstrip("/") + "/"
                    for existing in [p for p in files if p.startswith(prefix)]:
                        del files[existing]
                else:
                    raise HubError(400, f"Unknown commit operation {key!r}.")
            commit = self.hub.add_commit(repo, header.get("summary") or "commit", files)
        url = f"{self.hub.endpoint}/{URL_PREFIXES[repo.type]}{repo.id}/commit/{commit.oid}"
        self.send_json({"success": True, "commitOid": commit.oid, "commitUrl": url, "pullRequestUrl": None})

    def route_tree(self, kind, ns, name, rev, path=None):
        repo = self.hub.repo(REPO_TYPES[kind], f"{ns}/{name}", self.user())
        commit = self.snapshot(repo, rev)
        base = unquote(path or "").strip("/")
        recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
        expand = self.query.get("expand", ["false"])[0].lower() in ("1", "true")
        folders = _folders(commit.files)
        if base and base not in folders:
            raise HubError(404, f"Entry not found: {base}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        prefix = base + "/" if base else ""
        entries = []
        for folder in sorted(folders):
            rest = folder[len(prefix) :]
            if folder.startswith(prefix) and rest and (recursive or "/" not in rest):
                entries.append(_folder_entry(folder, commit.files, commit if expand else None))
        for file_path, blob in sorted(commit.files.items()):
            rest = file_path[len(prefix) :]
            if file_path.startswith(prefix) and (recursive or "/" not in rest):
                entries.append(_file_entry(file_path, blob, commit if expand else None))
        self.send_json(entries)

    def route_paths_info(self, kind, ns, name, rev):
        repo = self.hub.repo(REPO_TYPES[kind], f"{ns}/{name}", self.user())
        commit = self.snapshot(repo, rev)
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = self.json_body()
            paths, expand = form.get("paths", []), bool(form.get("expand"))
        else:
            form = parse_qs(self.body.decode())
            paths, expand = form.get("paths", []), form.get("expand", ["False"])[0].lower() == "true"
        folders = _folders(commit.files)
        entries = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                entries.append(_file_entry(path, commit.files[path], commit if expand else None))
            elif path in folders:
                entries.append(_folder_entry(path, commit.files, commit if expand else None))
        self.send_json(entries)

    def route_refs(self, kind, ns, name):
        repo = self.hub.repo(REPO_TYPES[kind], f"{ns}/{name}", self.user())
        branch = {"name": "main", "ref": "refs/heads/main", "targetCommit": repo.head.oid}
        self.send_json({"branches": [branch], "converts": [], "tags": [], "pullRequests": []})

    def route_commits(self, kind, ns, name, rev):
        repo = self.hub.repo(REPO_TYPES[kind], f"{ns}/{name}", self.user())
        head = self.snapshot(repo, rev)
        history = repo.commits[: repo.commits.index(head) + 1]
        self.send_json(
            [
                {
                    "id": c.oid,
                    "title": c.message,
                    "message": "",
                    "authors": [{"user": repo.id.split("/")[0]}],
                    "date": c.date,
                }
                for c in reversed(history)
            ]
        )

    def route_lfs_batch(self, ns, name, prefix=None):
        kind = {None: "models", "datasets/": "datasets", "spaces/": "spaces"}[prefix]
        self.writable_repo(kind, ns, name)
        payload = self.json_body()
        if payload.get("operation") != "upload":
            raise HubError(400, "The test Hub server only answers LFS uploads.")
        objects = []
        for obj in payload.get("objects", []):
            answer = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not (self.hub.blob_dir / obj["oid"]).exists():  # no "actions" means already stored: nothing to send
                href = f"{self.hub.endpoint}/lfs-upload/{obj['oid']}"
                answer["actions"] = {"upload": {"href": href, "header": {}}}
            objects.append(answer)
        self.send_bytes(
            json.dumps({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}).encode(),
            headers={"Content-Type": "application/vnd.git-lfs+json"},
        )

    def route_lfs_upload(self, sha256):
        if hashlib.sha256(self.body).hexdigest() != sha256:
            raise HubError(400, "Uploaded bytes do not match their sha256.")
        self.hub.store_blob(self.body)
        self.send_bytes(b"", headers={"ETag": f'"{sha256}"'})

    def route_resolve(self, ns, name, rev, path, prefix=None):
        kind = {None: "models", "datasets/": "datasets", "spaces/": "spaces"}[prefix]
        repo = self.hub.repo(REPO_TYPES[kind], f"{ns}/{name}", self.user())
        commit = self.snapshot(repo, rev)
        path = unquote(path)
        blob = commit.files.get(path)
        if blob is None:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound", {"X-Repo-Commit": commit.oid})
        data = (self.hub.blob_dir / blob.sha256).read_bytes() if self.command == "GET" else b""
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{blob.sha256 if blob.lfs else blob.git_oid}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if blob.lfs:
            headers["X-Linked-Etag"] = f'"{blob.sha256}"'
            headers["X-Linked-Size"] = blob.size
        if self.command == "HEAD":
            self.send_response(200)
            for key, value in headers.items():
                self.send_header(key, str(value))
            self.send_header("Content-Length", str(blob.size))
            self.end_headers()
            return
        ranged = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if ranged and (ranged.group(1) or ranged.group(2)):
            start, end = ranged.groups()
            if start == "":  # a suffix: the last N bytes
                start, end = max(0, blob.size - int(end)), blob.size - 1
            else:
                start, end = int(start), min(int(end) if end else blob.size - 1, blob.size - 1)
            if start >= blob.size:
                raise HubError(
                    416, "Requested range not satisfiable", headers={"Content-Range": f"bytes */{blob.size}"}
                )
            headers["Content-Range"] = f"bytes {start}-{end}/{blob.size}"
            return self.send_bytes(data[start : end + 1], 206, headers)
        self.send_bytes(data, 200, headers)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Run the test Hub server in the foreground.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default="hf_mathalign_test")
    parser.add_argument("--user", default="tester")
    args = parser.parse_args()
    hub = HubServer(tokens={args.token: args.user}).start(args.port)
    print(f"HF_ENDPOINT={hub.endpoint} HF_TOKEN={args.token} HF_HUB_DISABLE_XET=1  (Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        hub.stop()
