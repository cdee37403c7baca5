"""A fake Hugging Face Hub on 127.0.0.1, for tests: serves repos the test builds, as huggingface.co does.

It answers the requests huggingface_hub makes, with the headers and redirects the real Hub sends:

    GET  /api/models/{repo_id}[/revision/{rev}]   JSON: id, sha (the commit), siblings with size,
                                                  blobId and, for LFS files, lfs.sha256/size
    HEAD/GET /{repo_id}/resolve/{rev}/{file}      small files: a relative 307 to
                                                  /api/resolve-cache/models/{repo_id}/{commit}/{file},
                                                  which answers 200 with ETag = git blob id, gzip-encoded
                                                  and without a length when the client accepts gzip;
                                                  LFS files: 302 to a signed storage URL, with
                                                  X-Linked-Etag (the sha256), X-Linked-Size, X-Repo-Commit,
                                                  X-Xet-Hash and a Link rel="xet-auth" header
    HEAD/GET /cdn/{sha256}?...&Signature=...      the LFS bytes, with Range support (206) and
                                                  Content-Disposition; a link serves one GET: asked
                                                  again (a retry after a cut) it has expired: 403

Every response of the Hub carries X-Repo-Commit; errors carry X-Error-Code (RepoNotFound,
RevisionNotFound, EntryNotFound) as the Hub's do, which huggingface_hub turns into its typed
exceptions. The Xet headers are real, so a client must be told HF_HUB_DISABLE_XET=1 (the fake
serves no Xet storage). The storage is addressed as ``localhost`` (the API as ``127.0.0.1``): a
different host, so clients treat it as the Hub's CDN (no token sent).

Knobs for failure tests: ``cut[file] = n`` closes the next transfer of ``file`` after n bytes (once);
``corrupt.add(file)`` serves wrong bytes of the right size; ``delay`` sleeps between chunks;
``private[repo_id] = token`` requires ``Authorization: Bearer token``; ``hold = (file, n)`` makes
transfers of ``file`` wait until n HEAD requests for it have arrived (so that two clients are
certainly downloading at the same time; ``hold_timed_out`` says if that wait gave up after 30 s);
``links_last = False`` lets a signed link serve any number of GETs; ``refuse_storage = True``
answers every storage request with 403; ``xet = False`` leaves out the Xet headers, as a Hub or mirror
whose repo is not on Xet storage does. (huggingface_hub, with Xet disabled, then GETs the signed
link itself, and retries a cut transfer on that link; with the Xet headers it GETs the resolve URL
each time, so each attempt is redirected to a fresh link.)
``requests`` logs (method, path, Range header, Authorization header) of everything asked, and
``statuses`` the status of every answer.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

LFS_SUFFIXES = (".safetensors", ".bin", ".h5", ".msgpack", ".ot")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


# ---- checkpoints laid out as the Hub's own files are ---------------------------------------------

_COMMON_CONFIG = {
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
    "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": None,
    "summary_first_dropout": 0.1, "summary_proj_to_labels": True, "summary_type": "cls_index",
    "summary_use_proj": True, "task_specific_params": {"text-generation": {"do_sample": True, "max_length": 50}},
    "vocab_size": 50257,
}
# The config.json of each repo as the Hub serves it (the fields that differ from gpt2's).
REAL_CONFIGS = {
    "gpt2": {},
    "distilgpt2": {"_num_labels": 1, "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}, "n_layer": 6},
    "gpt2-medium": {"n_embd": 1024, "n_head": 16, "n_layer": 24, "n_special": 0, "predict_special_tokens": True},
}


def real_config(kind: str, **changes) -> bytes:
    """config.json of the Hub's ``kind`` repo (gpt2, distilgpt2, gpt2-medium), with ``changes``
    (e.g. ``n_layer=2`` for a small test model), keys sorted and indented as the Hub's files are."""
    config = {**_COMMON_CONFIG, **REAL_CONFIGS[kind], **changes}
    if "n_ctx" in changes and "n_positions" not in changes:
        config["n_positions"] = changes["n_ctx"]
    return (json.dumps(dict(sorted(config.items())), indent=2) + "\n").encode()


def hub_safetensors(flat: dict, n_ctx: int, prefix: str = "") -> bytes:
    """A float32 checkpoint as the Hub's gpt2 and distilgpt2 files hold it: the names (bare, or with
    ``prefix`` = "transformer."), an ``h.N.attn.bias`` mask buffer [1, 1, n_ctx, n_ctx] per layer, no
    lm_head.weight, tensors in name order, and the header compact and NOT padded, so that the data
    (and every float32 in it, for gpt2's names) start at an offset that is not a multiple of 4.

    ``flat`` maps bare names (``wte.weight``, ``h.0.attn.c_attn.weight``) to float32 arrays."""
    import numpy as np

    n_layer = 1 + max((int(k.split(".")[1]) for k in flat if k.startswith("h.")), default=-1)
    mask = np.tril(np.ones((1, 1, n_ctx, n_ctx), np.float32))
    tensors = {prefix + k: np.ascontiguousarray(v, dtype="<f4") for k, v in flat.items()}
    tensors.update({f"{prefix}h.{layer}.attn.bias": mask for layer in range(n_layer)})
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name in sorted(tensors):
        value = tensors[name]
        header[name] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + value.nbytes]}
        offset += value.nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    return len(blob).to_bytes(8, "little") + blob + b"".join(tensors[name].tobytes() for name in sorted(tensors))


class FakeHub:
    def __init__(self):
        self.repos: dict[str, dict] = {}  # repo_id -> {"refs": {name: commit}, "commits": {commit: {file: bytes}}}
        self.aliases: dict[str, str] = {}  # e.g. "gpt2" -> "openai-community/gpt2", as the Hub redirects
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes, what the CDN serves
        self.cut: dict[str, int] = {}
        self.corrupt: set[str] = set()
        self.private: dict[str, str] = {}
        self.delay = 0.0
        self.hold: tuple[str, int] | None = None
        self.hold_timed_out = False
        self.requests: list[tuple[str, str, str | None, str | None]] = []
        self.statuses: list[int] = []  # the status of each logged request, in order
        self.links_last = True  # False: a signed link serves any number of GETs
        self.refuse_storage = False
        self.gzipped: list[str] = []  # small files sent gzip-encoded, without a length
        self.xet = True  # send the Xet headers (X-Xet-Hash, Link rel="xet-auth") with LFS files, as the Hub does
        self._links: dict[str, int] = {}  # signature -> GETs served
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cdn = f"http://localhost:{self.port}/cdn"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self.running = True

    def add_repo(self, repo_id: str, files: dict[str, bytes], revision: str = "main") -> str:
        """Add (or add a commit to) a repo; returns the commit hash, which depends on the content."""
        digest = hashlib.sha1(repo_id.encode())
        for name in sorted(files):
            digest.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
        commit = digest.hexdigest()
        repo = self.repos.setdefault(repo_id, {"refs": {}, "commits": {}})
        repo["refs"][revision] = commit
        repo["commits"][commit] = dict(files)
        for name, data in files.items():
            if name.endswith(LFS_SUFFIXES):
                self.blobs[hashlib.sha256(data).hexdigest()] = data
        return commit

    def stop(self) -> None:
        if self.running:
            self._server.shutdown()
            self._server.server_close()
            self.running = False

    def log(self, method: str | None = None, contains: str = "") -> list:
        with self._lock:
            return [r for r in self.requests if (method is None or r[0] == method) and contains in r[1]]

    # ---- lookups -------------------------------------------------------------------------------

    def find(self, repo_id: str, revision: str):
        """(repo, commit) or raises _HubError as the Hub would answer."""
        repo_id = self.aliases.get(repo_id, repo_id)
        repo = self.repos.get(repo_id)
        if repo is None:
            raise _HubError(404, "RepoNotFound", "Repository not found")
        commit = repo["refs"].get(revision, revision if revision in repo["commits"] else None)
        if commit is None:
            raise _HubError(404, "RevisionNotFound", "Invalid rev id", commit=None)
        return repo_id, repo, commit


class _HubError(Exception):
    def __init__(self, status, code, message, commit=None):
        super().__init__(message)
        self.status, self.code, self.message, self.commit = status, code, message, commit


def _make_handler(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"  # one request per connection: simple and enough

        def log_message(self, *args):  # keep the test output clean
            pass

        def do_HEAD(self):
            self._serve(body=False)

        def do_GET(self):
            self._serve(body=True)

        # ---- routing ---------------------------------------------------------------------------

        def _serve(self, body: bool):
            path = urlsplit(self.path).path
            with hub._lock:
                hub.requests.append((self.command, path, self.headers.get("Range"), self.headers.get("Authorization")))
            try:
                if path.startswith("/api/resolve-cache/models/"):
                    self._resolve_cache(path[len("/api/resolve-cache/models/"):], body)
                elif path.startswith("/api/models/"):
                    self._api(path[len("/api/models/"):])
                elif path.startswith("/cdn/"):
                    self._cdn(path[len("/cdn/"):], body)
                elif "/resolve/" in path:
                    self._resolve(path, body)
                else:
                    raise _HubError(404, None, "Not found")
            except _HubError as e:
                self._status(e.status)
                if e.code:
                    self.send_header("X-Error-Code", e.code)
                self.send_header("X-Error-Message", e.message)
                if e.commit:
                    self.send_header("X-Repo-Commit", e.commit)
                data = json.dumps({"error": e.message}).encode()
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _authorize(self, repo_id):
            token = hub.private.get(repo_id)
            if token is not None and self.headers.get("Authorization") != f"Bearer {token}":
                # the Hub hides private repos: 401 + RepoNotFound without the right token
                raise _HubError(401, "RepoNotFound", "Repository not found")

        def _api(self, rest: str):
            if "/revision/" in rest:
                repo_id, revision = rest.split("/revision/", 1)
                revision = unquote(revision)
            else:
                repo_id, revision = rest, "main"
            repo_id, repo, commit = hub.find(repo_id, revision)
            self._authorize(repo_id)
            siblings = []
            for name, data in sorted(repo["commits"][commit].items()):
                entry = {"rfilename": name, "size": len(data), "blobId": git_blob_id(data)}
                if name.endswith(LFS_SUFFIXES):
                    entry["lfs"] = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                siblings.append(entry)
            data = json.dumps({"id": repo_id, "modelId": repo_id, "sha": commit, "private": repo_id in hub.private,
                               "siblings": siblings, "tags": ["gpt2"]}).encode()
            self._status(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command == "GET":
                self.wfile.write(data)

        def _status(self, status: int):
            with hub._lock:
                hub.statuses.append(status)
            self.send_response(status)

        def _resolve(self, path: str, body: bool):
            repo_id, rest = path.lstrip("/").split("/resolve/", 1)
            revision, filename = rest.split("/", 1)
            repo_id, repo, commit = hub.find(repo_id, unquote(revision))
            self._authorize(repo_id)
            files = repo["commits"][commit]
            filename = unquote(filename)
            if filename not in files:
                raise _HubError(404, "EntryNotFound", "Entry not found", commit=commit)
            data = files[filename]
            if filename.endswith(LFS_SUFFIXES):
                sha = hashlib.sha256(data).hexdigest()
                signature = uuid.uuid4().hex
                with hub._lock:
                    hub._links[signature] = 0
                self._status(302)
                self.send_header("Location", f"{hub.cdn}/{sha}?file={filename}&Expires=3600&Signature={signature}")
                self.send_header("X-Repo-Commit", commit)
                self.send_header("X-Linked-Etag", f'"{sha}"')
                self.send_header("X-Linked-Size", str(len(data)))
                if hub.xet:
                    self.send_header("X-Xet-Hash", hashlib.sha256(b"xet" + data).hexdigest())
                    self.send_header("Link", f'<{hub.url}/api/models/{repo_id}/xet-read-token/{commit}>; rel="xet-auth"')
                self.send_header("ETag", f'"{git_blob_id(data)}"')  # the pointer file's, as on the Hub
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self._status(307)  # relative, as the Hub's own: the client must resolve it against the request's URL
            self.send_header("Location", f"/api/resolve-cache/models/{repo_id}/{commit}/{filename}")
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{git_blob_id(data)}"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _resolve_cache(self, rest: str, body: bool):
            parts = rest.split("/")
            repo_id, commit, filename = "/".join(parts[:2]), parts[2], unquote("/".join(parts[3:]))
            repo_id, repo, commit = hub.find(repo_id, commit)
            self._authorize(repo_id)
            data = repo["commits"][commit].get(filename)
            if data is None:
                raise _HubError(404, "EntryNotFound", "Entry not found", commit=commit)
            gzipped = body and "gzip" in (self.headers.get("Accept-Encoding") or "")
            self._status(200)
            self.send_header("X-Repo-Commit", commit)
            self.send_header("ETag", f'"{git_blob_id(data)}"')
            if gzipped:  # compressed, and no length: the connection's end marks the end (HTTP/1.0)
                data = gzip.compress(data)
                with hub._lock:
                    hub.gzipped.append(filename)
                self.send_header("Content-Encoding", "gzip")
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if body:
                self.wfile.write(data)

        def _cdn(self, rest: str, body: bool):
            sha = rest.split("?")[0]
            if sha not in hub.blobs:
                raise _HubError(404, None, "No such blob")
            data = hub.blobs[sha]
            query = dict(part.split("=", 1) for part in urlsplit(self.path).query.split("&") if "=" in part)
            filename = query.get("file", "")
            with hub._lock:
                uses = hub._links.get(query.get("Signature", ""))
                if body and uses is not None:
                    hub._links[query["Signature"]] = uses + 1
            if hub.refuse_storage or uses is None or (body and hub.links_last and uses >= 1):
                raise _HubError(403, None, "Request has expired")  # as the storage answers an expired signature
            if filename in hub.corrupt:
                data = bytes(b ^ 0x5A for b in data[:64]) + data[64:]  # same size, wrong content
            start = 0
            ranged = self.headers.get("Range")
            if ranged and ranged.startswith("bytes=") and ranged.endswith("-"):
                start = int(ranged[len("bytes="):-1])
                if start >= len(data):
                    raise _HubError(416, None, "Range not satisfiable")
                self._status(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self._status(200)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Disposition", f'inline; filename*=UTF-8\'\'{filename}; filename="{filename}";')
            self.send_header("Content-Length", str(len(data) - start))
            self.send_header("ETag", f'"{sha}"')
            self.end_headers()
            if not body:
                return
            if hub.hold is not None and hub.hold[0] == filename:
                deadline = time.monotonic() + 30
                while len(hub.log("HEAD", f"/{filename}")) < hub.hold[1]:
                    if time.monotonic() > deadline:
                        hub.hold_timed_out = True
                        break
                    time.sleep(0.01)
            with hub._lock:
                cut_at = hub.cut.pop(filename, None) if body else None
            end = len(data) if cut_at is None else max(cut_at, start)
            position = start
            while position < end:
                step = min(1 << 16, end - position)
                self.wfile.write(data[position:position + step])
                position += step
                if hub.delay:
                    time.sleep(hub.delay)
            if cut_at is not None:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)  # the transfer ends early, as when a network drops

    return Handler
