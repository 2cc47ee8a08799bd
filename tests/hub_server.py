"""A loopback server speaking the part of the Hugging Face Hub HTTP API that ``huggingface_hub`` uses.

No Hub is reachable from the machines this project is developed and tested on, yet ``push_to_hub``,
``HfApi().upload_folder``/``create_commit``/``create_repo`` and loading by repo id
(``from_pretrained("user/repo")``, ``hf_hub_download``, ``snapshot_download``) should be exercised for real,
through the real HTTP client. :class:`LoopbackHub` is an in-memory Hub on ``127.0.0.1`` built on the standard
library only (``http.server.ThreadingHTTPServer`` in a daemon thread).

Usage::

    with LoopbackHub() as hub:                        # binds 127.0.0.1 on a free port
        with hub.configure_client(hf_home=tmp_dir):   # point the in-process client at it
            model.push_to_hub("user/tiny")
            BertModel.from_pretrained("user/tiny")
        hub.files("user/tiny")                        # {"config.json": b"...", ...}
        hub.commits("user/tiny")                      # oldest first, "initial commit" included
        subprocess.run([...], env=hub.subprocess_env(hf_home=other_tmp_dir))

Why ``configure_client`` and not just ``HF_ENDPOINT``: ``huggingface_hub`` reads its environment into
``huggingface_hub.constants`` at import time (``ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE``, ``HF_HUB_CACHE``,
``HF_HUB_DISABLE_XET``, ...), the module-level ``huggingface_hub.hf_api.api`` instance behind the functional
helpers (``create_repo``, ``upload_folder``, ``model_info``...) captured the endpoint when it was built, and
``transformers.utils.hub.hf_api()`` caches one ``HfApi`` instance too. ``configure_client`` patches all of them
(and restores them on exit). A fresh subprocess only needs the environment: ``subprocess_env()``.

What the server implements (repo types model/dataset/space; ``{t}`` is ``models``/``datasets``/``spaces``):

- ``GET /api/whoami-v2``, ``GET /api/agent-harnesses`` (empty registry), ``POST /api/validate-yaml``,
  ``POST /api/telemetry/...`` (ignored)
- ``POST /api/repos/create`` (409 if it exists), ``DELETE /api/repos/delete``, ``POST /api/repos/move``
- ``GET /api/{t}/{ns}/{name}`` and ``.../revision/{rev}``: info with ``sha`` and ``siblings``
- ``GET /api/{t}/{ns}/{name}/tree/{rev}[/{path}]`` (``recursive``), ``POST .../paths-info/{rev}``
- ``POST /api/{t}/{ns}/{name}/preupload/{rev}``: every file ``uploadMode: "regular"``, ``shouldIgnore: false``
  and the git ``oid`` of the file already there (so unchanged files are skipped, as on the Hub)
- ``POST /api/{t}/{ns}/{name}/commit/{rev}``: NDJSON ``header`` / ``file`` (base64) / ``deletedFile`` /
  ``deletedFolder`` lines; ``lfsFile`` is refused (the server never asks for LFS); ``parentCommit`` is checked;
  ``create_pr=1`` commits to a new ``refs/pr/N`` branch
- ``GET .../refs``, ``GET .../commits/{rev}``, ``POST|DELETE .../branch/{b}``, ``POST .../tag/{rev}``,
  ``DELETE .../tag/{t}``, ``PUT .../settings``
- ``HEAD|GET /[{t}/]{ns}/{name}/(resolve|raw)/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag`` (the git blob
  oid), ``Content-Length``, ``Range`` support. Errors carry the ``X-Error-Code`` values the client maps to
  exceptions: ``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``.

Xet and LFS are never advertised: preupload always answers "regular" and no ``X-Xet-*`` header or ``xet-auth``
link is sent; set ``HF_HUB_DISABLE_XET=1`` as well (``configure_client``/``subprocess_env`` do) so that
``upload_folder`` takes the single-commit path instead of the Xet pipelined upload.

Anything else gets a 404 with a JSON body ``{"error": "LoopbackHub: no route for ..."}``, is logged as a
warning and printed to stderr, and is recorded in ``hub.unknown_requests``. Every request is recorded in
``hub.requests`` as ``(method, path)``.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import itertools
import json
import logging
import os
import socket
import sys
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from typing import Any, Iterator, Mapping
from urllib.parse import parse_qs, unquote, urlsplit

logger = logging.getLogger("adaptive_zoo.tests.hub_server")

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space", "kernels": "kernel"}
URL_PREFIXES = {"model": "", "dataset": "datasets/", "space": "spaces/", "kernel": "kernels/"}
DEFAULT_GITATTRIBUTES = b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n*.bin filter=lfs diff=lfs merge=lfs -text\n"


def git_blob_oid(data: bytes) -> str:
    """The git blob sha1 of ``data`` (what the Hub calls a regular file's ``oid``)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class HubCommit:
    """One commit of a :class:`LoopbackHub` repo."""

    oid: str
    title: str
    description: str
    parent: str | None
    date: str
    paths: tuple[str, ...]


@dataclass
class _Commit:
    oid: str
    title: str
    description: str
    parent: str | None
    date: str
    files: dict[str, bytes]


@dataclass
class _Repo:
    repo_type: str
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, _Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    pr_count: int = 0
    gated: bool | str = False

    def resolve(self, revision: str) -> str | None:
        if revision in self.branches:
            return self.branches[revision]
        if revision in self.tags:
            return self.tags[revision]
        if revision in self.commits:
            return revision
        if 7 <= len(revision) < 40:
            matches = [oid for oid in self.commits if oid.startswith(revision.lower())]
            if len(matches) == 1:
                return matches[0]
        return None


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = dict(headers or {})


class LoopbackHub:
    """An in-memory Hub served on ``127.0.0.1``; see the module docstring.

    Args:
        user: the name ``whoami`` reports, used as namespace for repo ids given without one.
        token: the token clients are told to use. Any non-empty token is accepted.
        port: 0 (default) picks a free port.
        require_token_for_write: refuse writes that carry no ``Authorization`` header (401), like the Hub.
    """

    def __init__(self, user: str = "user", token: str = "hf_loopback_token", port: int = 0, *,
                 require_token_for_write: bool = True):
        self.user = user
        self.token = token
        self.require_token_for_write = require_token_for_write
        self._port = port
        self._lock = threading.RLock()
        self._repos: dict[tuple[str, str], _Repo] = {}
        self._counter = itertools.count()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._handler_threads: set[threading.Thread] = set()
        self.hf_home: Path | None = None  # set by configure_client
        self.requests: list[tuple[str, str]] = []
        self.unknown_requests: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "LoopbackHub":
        if self._server is not None:
            return self
        hub = self

        class _Server(ThreadingHTTPServer):
            daemon_threads = True
            allow_reuse_address = True

            def process_request(self, request, client_address):  # noqa: D102
                # like ThreadingMixIn.process_request, but keeps the socket and thread so stop() can end them
                def run() -> None:
                    try:
                        self.process_request_thread(request, client_address)
                    finally:
                        with hub._lock:
                            hub._handler_threads.discard(thread)

                thread = threading.Thread(target=run, name=f"LoopbackHub-conn:{client_address[1]}", daemon=True)
                with hub._lock:
                    hub._connections.add(request)
                    hub._handler_threads.add(thread)
                thread.start()

            def shutdown_request(self, request):  # noqa: D102
                with hub._lock:
                    hub._connections.discard(request)
                super().shutdown_request(request)

        handler = type("LoopbackHubHandler", (_Handler,), {"hub": self})
        self._server = _Server(("127.0.0.1", self._port), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"LoopbackHub:{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns, self._connections = list(self._connections), set()
        for conn in conns:  # keep-alive connections still parked in a handler thread
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                conn.close()
        with self._lock:
            threads = list(self._handler_threads)
        for thread in threads:
            thread.join(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "LoopbackHub":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("LoopbackHub is not running; call start() first")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ client configuration
    def subprocess_env(self, hf_home: str | os.PathLike | None = None, base: Mapping[str, str] | None = None
                       ) -> dict[str, str]:
        """The environment for a fresh process that should talk to this hub (its client reads it on import).

        ``hf_home`` (default: keep ``base``'s) becomes ``HF_HOME`` with ``HF_HUB_CACHE=<hf_home>/hub``
        and ``HF_MODULES_CACHE=<hf_home>/modules``, so the child starts with an empty cache.
        """
        env = dict(os.environ if base is None else base)
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGINGFACE_CO_STAGING", "HF_HUB_ENABLE_HF_TRANSFER",
                    "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HUGGINGFACE_HUB_CACHE", "HF_OIDC_RESOURCE"):
            env.pop(key, None)
        env.update({
            "HF_ENDPOINT": self.url,
            "HF_TOKEN": self.token,
            "HF_HUB_DISABLE_XET": "1",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_SYMLINKS_WARNING": "1",
        })
        no_proxy = ",".join(x for x in (env.get("NO_PROXY") or env.get("no_proxy"), "127.0.0.1", "localhost") if x)
        env["NO_PROXY"] = env["no_proxy"] = no_proxy
        if hf_home is not None:
            hf_home = str(Path(hf_home).resolve())
            env["HF_HOME"] = hf_home
            env["HF_HUB_CACHE"] = os.path.join(hf_home, "hub")
            env["HF_MODULES_CACHE"] = os.path.join(hf_home, "modules")
            env.pop("HF_XET_CACHE", None)
            env.pop("HF_ASSETS_CACHE", None)
        return env

    @contextlib.contextmanager
    def configure_client(self, hf_home: str | os.PathLike) -> Iterator["LoopbackHub"]:
        """Point the already-imported in-process ``huggingface_hub``/``transformers`` clients at this hub.

        Sets the environment variables of :meth:`subprocess_env` and patches what was read from them at import
        time: ``huggingface_hub.constants`` (``ENDPOINT``, ``HUGGINGFACE_CO_URL_TEMPLATE``, ``HF_URL_HOSTS``,
        ``HF_HOME``, ``HF_HUB_CACHE``, ``HF_TOKEN_PATH``..., ``HF_HUB_DISABLE_XET``, ``HF_HUB_OFFLINE``,
        ``HF_HUB_DISABLE_TELEMETRY``), the endpoint of ``huggingface_hub.hf_api.api`` (the instance behind the
        functional helpers), and resets ``transformers.utils.hub._hf_api`` (a cached ``HfApi``). Everything is
        restored on exit. Not patched: transformers' ``HF_MODULES_CACHE`` (where ``trust_remote_code`` modules are
        copied); set it in the environment before importing transformers, or load remote code in a subprocess.
        """
        import huggingface_hub.constants as C
        import huggingface_hub.hf_api as hf_api_mod

        hf_home = str(Path(hf_home).resolve())
        os.makedirs(hf_home, exist_ok=True)
        saved_hf_home, self.hf_home = self.hf_home, Path(hf_home)
        new_env = self.subprocess_env(hf_home=hf_home)
        env_keys = set(new_env) | {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HUGGING_FACE_HUB_TOKEN",
                                   "HF_TOKEN_PATH", "HUGGINGFACE_HUB_CACHE", "HF_XET_CACHE", "HF_ASSETS_CACHE",
                                   "HF_OIDC_RESOURCE"}
        saved_env = {k: os.environ.get(k) for k in env_keys}

        host = "127.0.0.1"
        token_path = os.path.join(hf_home, "token")
        patches: list[tuple[Any, str, Any]] = [
            (C, "ENDPOINT", self.url),
            (C, "HUGGINGFACE_CO_URL_TEMPLATE", self.url + "/{repo_id}/resolve/{revision}/{filename}"),
            (C, "HF_URL_HOSTS", frozenset(set(getattr(C, "HF_URL_HOSTS", frozenset())) | {host})),
            (C, "HF_HOME", hf_home),
            (C, "HF_HUB_CACHE", os.path.join(hf_home, "hub")),
            (C, "HUGGINGFACE_HUB_CACHE", os.path.join(hf_home, "hub")),
            (C, "HF_ASSETS_CACHE", os.path.join(hf_home, "assets")),
            (C, "HF_XET_CACHE", os.path.join(hf_home, "xet")),
            (C, "HF_TOKEN_PATH", token_path),
            (C, "HF_STORED_TOKENS_PATH", os.path.join(hf_home, "stored_tokens")),
            (C, "AGENT_HARNESSES_PATH", os.path.join(hf_home, ".agent_harnesses.json")),
            (C, "CHECK_FOR_UPDATE_DONE_PATH", os.path.join(hf_home, ".check_for_update_done")),
            (C, "HF_HUB_DISABLE_XET", True),
            (C, "HF_HUB_OFFLINE", False),
            (C, "HF_HUB_DISABLE_TELEMETRY", True),
            (hf_api_mod.api, "endpoint", self.url),
        ]
        try:
            import transformers.utils.hub as tf_hub
        except Exception:  # transformers missing or broken: nothing to reset there
            tf_hub = None
        if tf_hub is not None and hasattr(tf_hub, "_hf_api"):
            patches.append((tf_hub, "_hf_api", None))

        saved: list[tuple[Any, str, Any, bool]] = []
        try:
            for obj, name, value in patches:
                had = hasattr(obj, name)
                saved.append((obj, name, getattr(obj, name, None), had))
                setattr(obj, name, value)
            for key in env_keys:
                if key in new_env:
                    os.environ[key] = new_env[key]
                else:
                    os.environ.pop(key, None)
            yield self
        finally:
            for obj, name, value, had in reversed(saved):
                if had:
                    setattr(obj, name, value)
                else:
                    with contextlib.suppress(AttributeError):
                        delattr(obj, name)
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self.hf_home = saved_hf_home

    # ------------------------------------------------------------------ inspection
    def _get_repo(self, repo_id: str, repo_type: str) -> _Repo:
        repo = self._repos.get((repo_type, repo_id))
        if repo is None:
            raise KeyError(f"no {repo_type} repo {repo_id!r} on the loopback hub")
        return repo

    def repo_ids(self, repo_type: str = "model") -> list[str]:
        with self._lock:
            return sorted(rid for (rtype, rid) in self._repos if rtype == repo_type)

    def files(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> dict[str, bytes]:
        """The files of ``repo_id`` at ``revision`` (a branch, tag or commit oid): ``{path: content}``."""
        with self._lock:
            repo = self._get_repo(repo_id, repo_type)
            oid = repo.resolve(revision)
            if oid is None:
                raise KeyError(f"revision {revision!r} not found in {repo_id!r}")
            return dict(repo.commits[oid].files)

    def commits(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> list[HubCommit]:
        """The history of ``revision``, oldest first (the first one is the repo's ``initial commit``)."""
        with self._lock:
            repo = self._get_repo(repo_id, repo_type)
            oid = repo.resolve(revision)
            if oid is None:
                raise KeyError(f"revision {revision!r} not found in {repo_id!r}")
            out = []
            while oid is not None:
                c = repo.commits[oid]
                out.append(HubCommit(c.oid, c.title, c.description, c.parent, c.date, tuple(sorted(c.files))))
                oid = c.parent
            return out[::-1]

    def add_repo(self, repo_id: str, files: Mapping[str, bytes] | None = None, *, repo_type: str = "model",
                 private: bool = False, message: str = "Add files") -> str:
        """Create a repo directly (without HTTP), optionally with a first commit of ``files``; returns main's oid."""
        with self._lock:
            repo = self._create_repo(repo_id, repo_type, private)
            if files:
                self._commit(repo, "main", {**repo.commits[repo.branches["main"]].files, **files}, message, "")
            return repo.branches["main"]

    # ------------------------------------------------------------------ state changes (hold the lock)
    def _new_oid(self, *parts: str) -> str:
        h = hashlib.sha1()
        for p in (*parts, str(next(self._counter)), _now(), str(id(self))):
            h.update(p.encode() + b"\0")
        return h.hexdigest()

    def _create_repo(self, repo_id: str, repo_type: str, private: bool) -> _Repo:
        if (repo_type, repo_id) in self._repos:
            raise HubError(409, f"You already created this {repo_type} repo", headers={})
        repo = _Repo(repo_type=repo_type, repo_id=repo_id, private=private, created_at=_now())
        files = {".gitattributes": DEFAULT_GITATTRIBUTES}
        oid = self._new_oid(repo_type, repo_id, "initial commit")
        repo.commits[oid] = _Commit(oid, "initial commit", "", None, _now(), files)
        repo.branches["main"] = oid
        self._repos[(repo_type, repo_id)] = repo
        return repo

    def _commit(self, repo: _Repo, branch: str, files: dict[str, bytes], title: str, description: str) -> str:
        parent = repo.branches[branch]
        oid = self._new_oid(repo.repo_id, parent, title, *sorted(git_blob_oid(v) + k for k, v in files.items()))
        repo.commits[oid] = _Commit(oid, title, description, parent, _now(), files)
        repo.branches[branch] = oid
        return oid


def _safe_repo_path(path: str) -> str:
    p = PurePosixPath(path)
    if not path or path.startswith("/") or any(part in ("", ".", "..") for part in path.split("/")) or p.is_absolute():
        raise HubError(400, f"Invalid path in repo: {path!r}")
    if path.split("/")[0] == ".git":
        raise HubError(400, f"Forbidden path in repo: {path!r}")
    return path


class _Handler(BaseHTTPRequestHandler):
    hub: LoopbackHub  # set on the subclass built in LoopbackHub.start
    protocol_version = "HTTP/1.1"
    server_version = "LoopbackHub/1.0"
    timeout = 120  # seconds a keep-alive connection may idle in a handler thread

    # quiet: the default writes every request to stderr
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        logger.debug("%s - " + format, self.address_string(), *args)

    # ------------------------------------------------------------------ plumbing
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            body = b"".join(chunks)
        else:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        return body

    def _json_body(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise HubError(400, f"Invalid JSON body: {e}") from e

    def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None,
              content_type: str = "application/json; charset=utf-8", length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _send_json(self, obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), headers)

    def _send_error(self, err: HubError) -> None:
        headers = {"X-Error-Message": err.message.replace("\n", " ")[:500], **err.headers}
        if err.code:
            headers["X-Error-Code"] = err.code
        self._send_json({"error": err.message}, err.status, headers)

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        split = urlsplit(self.path)
        self.query = parse_qs(split.query, keep_blank_values=True)
        self.raw_segments = [s for s in split.path.split("/")][1:]
        self.segments = [unquote(s) for s in self.raw_segments]
        with hub._lock:
            hub.requests.append((method, split.path))
        try:
            self.body = self._read_body()
            handled = self._route(method)
            if not handled:
                with hub._lock:
                    hub.unknown_requests.append((method, split.path))
                msg = f"LoopbackHub: no route for {method} {split.path}"
                logger.warning(msg)
                print(msg, file=sys.stderr, flush=True)
                self._send_json({"error": msg}, 404, {"X-Error-Message": msg})
        except HubError as err:
            self._send_error(err)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as e:  # a bug in the server: make it loud
            logger.exception("LoopbackHub: error while serving %s %s", method, self.path)
            print(f"LoopbackHub: internal error on {method} {split.path}: {e!r}", file=sys.stderr, flush=True)
            with contextlib.suppress(Exception):
                self._send_json({"error": f"LoopbackHub internal error: {e!r}"}, 500)

    # ------------------------------------------------------------------ helpers
    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer ") and auth[7:].strip():
            return auth[7:].strip()
        return None

    def _require_write(self) -> None:
        if self.hub.require_token_for_write and self._token() is None:
            raise HubError(401, "Invalid credentials in Authorization header")

    def _repo(self, repo_type: str, repo_id: str) -> _Repo:
        repo = self.hub._repos.get((repo_type, repo_id))
        if repo is None or (repo.private and self._token() is None):
            raise HubError(404, "Repository not found", code="RepoNotFound")
        return repo

    def _commit_of(self, repo: _Repo, revision: str) -> _Commit:
        oid = repo.resolve(revision)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return repo.commits[oid]

    def _flag(self, name: str) -> bool:
        values = self.query.get(name) or self.query.get(name + "[]")
        return bool(values) and values[-1].lower() in ("1", "true", "yes")

    def _repo_url(self, repo: _Repo) -> str:
        return f"{self.hub.url}/{URL_PREFIXES[repo.repo_type]}{repo.repo_id}"

    # ------------------------------------------------------------------ routing
    def _route(self, method: str) -> bool:
        seg = self.segments
        if not seg or seg == [""]:
            return False
        if seg[0] == "api":
            return self._route_api(method, seg[1:])
        # /[datasets|spaces/]{ns}/{name}/(resolve|raw)/{rev}/{path...}
        repo_type = "model"
        rest = seg
        if seg[0] in ("datasets", "spaces", "kernels") and len(seg) > 4 and seg[3] in ("resolve", "raw"):
            repo_type, rest = REPO_TYPES[seg[0]], seg[1:]
        if len(rest) >= 5 and rest[2] in ("resolve", "raw") and method in ("GET", "HEAD"):
            self._resolve(repo_type, f"{rest[0]}/{rest[1]}", rest[3], "/".join(rest[4:]))
            return True
        return False

    def _route_api(self, method: str, seg: list[str]) -> bool:
        hub = self.hub
        if seg == ["whoami-v2"] and method == "GET":
            if self._token() is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            self._send_json({
                "type": "user", "id": "0" * 24, "name": hub.user, "fullname": "Loopback Hub User",
                "email": f"{hub.user}@loopback.invalid", "emailVerified": True, "isPro": False, "canPay": False,
                "orgs": [], "avatarUrl": "",
                "auth": {"type": "access_token", "accessToken": {
                    "displayName": "loopback", "role": "write", "createdAt": _now()}},
            })
            return True
        if seg == ["agent-harnesses"] and method == "GET":
            self._send_json({"standardEnvVars": [], "harnesses": {}})
            return True
        if seg and seg[0] == "telemetry":
            self._send_json({})
            return True
        if seg == ["validate-yaml"] and method == "POST":
            self._validate_yaml()
            return True
        if len(seg) == 2 and seg[0] == "repos":
            return self._route_repos(method, seg[1])
        if len(seg) >= 3 and seg[0] in REPO_TYPES:
            repo_type = REPO_TYPES[seg[0]]
            repo_id = f"{seg[1]}/{seg[2]}"
            action, args = (seg[3], seg[4:]) if len(seg) > 3 else (None, [])
            with hub._lock:
                return self._route_repo(method, repo_type, repo_id, action, args)
        return False

    def _route_repos(self, method: str, action: str) -> bool:
        hub = self.hub
        body = self._json_body()
        if action == "create" and method == "POST":
            self._require_write()
            name, org = body.get("name"), body.get("organization")
            repo_type = body.get("type") or "model"
            if not name or repo_type not in URL_PREFIXES:
                raise HubError(400, f"Invalid repo creation payload: {body}")
            repo_id = f"{org or hub.user}/{name}"
            private = bool(body.get("private")) or body.get("visibility") in ("private", "protected")
            with hub._lock:
                try:
                    repo = hub._create_repo(repo_id, repo_type, private)
                except HubError as err:
                    url = f"{hub.url}/{URL_PREFIXES[repo_type]}{repo_id}"
                    self._send_json({"error": err.message, "url": url}, 409)
                    return True
                self._send_json({"url": self._repo_url(repo), "name": repo_id, "id": repo_id})
            return True
        if action == "delete" and method == "DELETE":
            self._require_write()
            repo_type = body.get("type") or "model"
            repo_id = f"{body.get('organization') or hub.user}/{body.get('name')}"
            with hub._lock:
                self._repo(repo_type, repo_id)
                del hub._repos[(repo_type, repo_id)]
            self._send_json({})
            return True
        if action == "move" and method == "POST":
            self._require_write()
            repo_type = body.get("type") or "model"
            with hub._lock:
                repo = self._repo(repo_type, body.get("fromRepo", ""))
                to = body.get("toRepo", "")
                if (repo_type, to) in hub._repos:
                    raise HubError(409, f"Repository {to} already exists")
                del hub._repos[(repo_type, repo.repo_id)]
                repo.repo_id = to
                hub._repos[(repo_type, to)] = repo
            self._send_json({})
            return True
        return False

    def _route_repo(self, method: str, repo_type: str, repo_id: str, action: str | None, args: list[str]) -> bool:
        if action is None and method == "GET":
            repo = self._repo(repo_type, repo_id)
            self._send_json(self._info(repo, self._commit_of(repo, "main")))
            return True
        if action == "revision" and method == "GET" and args:
            repo = self._repo(repo_type, repo_id)
            self._send_json(self._info(repo, self._commit_of(repo, "/".join(args))))
            return True
        if action == "tree" and method == "GET" and args:
            self._tree(self._repo(repo_type, repo_id), args[0], "/".join(args[1:]).strip("/"))
            return True
        if action == "paths-info" and method == "POST" and args:
            self._paths_info(self._repo(repo_type, repo_id), "/".join(args))
            return True
        if action == "preupload" and method == "POST" and args:
            self._require_write()
            self._preupload(self._repo(repo_type, repo_id), "/".join(args))
            return True
        if action == "commit" and method == "POST" and args:
            self._require_write()
            self._commit(self._repo(repo_type, repo_id), "/".join(args))
            return True
        if action == "refs" and method == "GET":
            repo = self._repo(repo_type, repo_id)

            def ref(kind: str, name: str, oid: str) -> dict:
                return {"name": name, "ref": f"refs/{kind}/{name}", "targetCommit": oid}

            self._send_json({
                "branches": [ref("heads", b, o) for b, o in repo.branches.items() if not b.startswith("refs/pr/")],
                "tags": [ref("tags", t, o) for t, o in repo.tags.items()],
                "converts": [],
                "pullRequests": [{"name": b, "ref": b, "targetCommit": o}
                                 for b, o in repo.branches.items() if b.startswith("refs/pr/")],
            })
            return True
        if action == "commits" and method == "GET":
            repo = self._repo(repo_type, repo_id)
            commit: _Commit | None = self._commit_of(repo, "/".join(args) or "main")
            items = []
            while commit is not None:
                items.append({"id": commit.oid, "title": commit.title, "message": commit.description,
                              "authors": [{"user": self.hub.user}], "date": commit.date})
                commit = repo.commits[commit.parent] if commit.parent else None
            self._send_json(items)
            return True
        if action == "branch" and args and method in ("POST", "DELETE"):
            self._require_write()
            repo = self._repo(repo_type, repo_id)
            branch = "/".join(args)
            if method == "DELETE":
                if branch not in repo.branches or branch == "main":
                    raise HubError(404 if branch != "main" else 403, f"Cannot delete branch {branch}",
                                   code="RevisionNotFound" if branch != "main" else None)
                del repo.branches[branch]
            else:
                if branch in repo.branches:
                    raise HubError(409, f"Reference already exists: refs/heads/{branch}")
                start = self._json_body().get("startingPoint") or "main"
                repo.branches[branch] = self._commit_of(repo, start).oid
            self._send_json({})
            return True
        if action == "tag" and args and method in ("POST", "DELETE"):
            self._require_write()
            repo = self._repo(repo_type, repo_id)
            if method == "DELETE":
                tag = "/".join(args)
                if tag not in repo.tags:
                    raise HubError(404, f"Tag {tag} not found", code="RevisionNotFound")
                del repo.tags[tag]
            else:
                tag = self._json_body().get("tag")
                if not tag:
                    raise HubError(400, "Missing tag name")
                if tag in repo.tags:
                    raise HubError(409, f"Tag {tag} already exists")
                repo.tags[tag] = self._commit_of(repo, "/".join(args)).oid
            self._send_json({})
            return True
        if action == "settings" and method == "PUT":
            self._require_write()
            repo = self._repo(repo_type, repo_id)
            body = self._json_body()
            if "private" in body:
                repo.private = bool(body["private"])
            if "visibility" in body:
                repo.private = body["visibility"] in ("private", "protected")
            if "gated" in body:
                repo.gated = body["gated"]
            self._send_json({})
            return True
        return False

    # ------------------------------------------------------------------ endpoints
    def _validate_yaml(self) -> None:
        content = self._json_body().get("content", "")
        errors = []
        if content.startswith("---"):
            parts = content.split("\n---", 1)
            try:
                import yaml  # optional: only used to reject front matter that does not parse

                yaml.safe_load(parts[0][3:])
            except ImportError:
                pass
            except Exception as e:  # yaml.YAMLError
                errors.append({"message": f"Invalid YAML front matter: {e}"})
        if errors:
            raise HubError(400, "; ".join(e["message"] for e in errors))
        self._send_json({"errors": [], "warnings": []})

    def _info(self, repo: _Repo, commit: _Commit) -> dict:
        blobs = self._flag("blobs")
        siblings = []
        for path in sorted(commit.files):
            sib: dict[str, Any] = {"rfilename": path}
            if blobs:
                sib.update(size=len(commit.files[path]), blobId=git_blob_oid(commit.files[path]))
            siblings.append(sib)
        info: dict[str, Any] = {
            "_id": hashlib.sha1(repo.repo_id.encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": commit.date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": repo.gated,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "siblings": siblings,
            "usedStorage": sum(len(v) for v in commit.files.values()),
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
            raw = commit.files.get("config.json")
            if raw is not None:
                with contextlib.suppress(ValueError, AttributeError):
                    cfg = json.loads(raw)
                    info["config"] = {k: cfg[k] for k in ("architectures", "model_type", "auto_map") if k in cfg}
        return info

    @staticmethod
    def _entry(path: str, data: bytes) -> dict:
        return {"type": "file", "oid": git_blob_oid(data), "size": len(data), "path": path}

    @staticmethod
    def _dir_entry(path: str) -> dict:
        return {"type": "directory", "oid": hashlib.sha1(("tree " + path).encode()).hexdigest(), "size": 0,
                "path": path}

    def _tree(self, repo: _Repo, revision: str, path: str) -> None:
        commit = self._commit_of(repo, revision)
        prefix = path + "/" if path else ""
        under = {p: d for p, d in commit.files.items() if p.startswith(prefix)}
        if path and not under:
            raise HubError(404, f"Path {path} not found in {repo.repo_id}@{revision}", code="EntryNotFound",
                           headers={"X-Repo-Commit": commit.oid})
        recursive = self._flag("recursive")
        entries: dict[str, dict] = {}
        for p, data in sorted(under.items()):
            rel = p[len(prefix):].split("/")
            if recursive:
                for i in range(1, len(rel)):
                    d = prefix + "/".join(rel[:i])
                    entries.setdefault(d, self._dir_entry(d))
                entries[p] = self._entry(p, data)
            elif len(rel) == 1:
                entries[p] = self._entry(p, data)
            else:
                d = prefix + rel[0]
                entries.setdefault(d, self._dir_entry(d))
        self._send_json(list(entries.values()), headers={"X-Repo-Commit": commit.oid})

    def _paths_info(self, repo: _Repo, revision: str) -> None:
        commit = self._commit_of(repo, revision)
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = self._json_body().get("paths", [])
        else:
            paths = parse_qs(self.body.decode(), keep_blank_values=True).get("paths", [])
        out = []
        for path in paths:
            path = path.strip("/")
            if path in commit.files:
                out.append(self._entry(path, commit.files[path]))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(self._dir_entry(path))
        self._send_json(out)

    def _preupload(self, repo: _Repo, revision: str) -> None:
        body = self._json_body()
        oid = repo.resolve(revision)
        if oid is None and not self._flag("create_pr"):
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        existing = repo.commits[oid].files if oid else {}
        files = []
        for f in body.get("files", []):
            path = f.get("path")
            data = existing.get(path)
            files.append({"path": path, "uploadMode": "regular", "shouldIgnore": False,
                          "oid": git_blob_oid(data) if data is not None else None})
        self._send_json({"files": files, "commitOid": oid})

    def _commit(self, repo: _Repo, revision: str) -> None:
        hub = self.hub
        lines = [line for line in self.body.decode("utf-8").splitlines() if line.strip()]
        try:
            items = [json.loads(line) for line in lines]
        except ValueError as e:
            raise HubError(400, f"Invalid NDJSON commit payload: {e}") from e
        if not items or items[0].get("key") != "header":
            raise HubError(400, "The commit payload must start with a header line")
        header = items[0].get("value") or {}
        title = (header.get("summary") or "").strip()
        if not title:
            raise HubError(400, "Commit summary is required")

        create_pr = self._flag("create_pr")
        base_oid = repo.resolve(revision)
        if base_oid is None or (not create_pr and revision not in repo.branches):
            raise HubError(404, f"Invalid rev id: {revision} (commits go to a branch)", code="RevisionNotFound")
        parent_commit = header.get("parentCommit")
        if parent_commit and not base_oid.startswith(parent_commit.lower()):
            raise HubError(412, f"A commit has happened since {parent_commit}. Please refresh and try again.")

        files = dict(repo.commits[base_oid].files)
        for item in items[1:]:
            key, value = item.get("key"), item.get("value") or {}
            path = _safe_repo_path(str(value.get("path", "")))
            if key == "file":
                encoding = value.get("encoding", "base64")
                content = value.get("content", "")
                files[path] = base64.b64decode(content) if encoding == "base64" else content.encode("utf-8")
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(404, f"A file with this name doesn't exist: {path}", code="EntryNotFound")
                del files[path]
            elif key == "deletedFolder":
                prefix = path.rstrip("/") + "/"
                doomed = [p for p in files if p.startswith(prefix)]
                if not doomed:
                    raise HubError(404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound")
                for p in doomed:
                    del files[p]
            elif key == "lfsFile":
                raise HubError(400, f"LoopbackHub does not store LFS objects (file {path}); it answers preupload "
                                    "with uploadMode 'regular', so only regular files can be committed")
            else:
                raise HubError(400, f"Unknown commit operation key {key!r}")

        pr_url = None
        branch = revision
        if create_pr:
            repo.pr_count += 1
            branch = f"refs/pr/{repo.pr_count}"
            repo.branches[branch] = base_oid
            pr_url = f"{self._repo_url(repo)}/discussions/{repo.pr_count}"
        oid = hub._commit(repo, branch, files, title, header.get("description") or "")
        self._send_json({"success": True, "commitOid": oid, "commitUrl": f"{self._repo_url(repo)}/commit/{oid}",
                         "hookOutput": "", "pullRequestUrl": pr_url})

    def _resolve(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        with self.hub._lock:
            repo = self._repo(repo_type, repo_id)
            commit = self._commit_of(repo, revision)
            data = commit.files.get(path)
            oid = commit.oid
        if data is None:
            raise HubError(404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": oid})
        headers = {"X-Repo-Commit": oid, "ETag": f'"{git_blob_oid(data)}"', "Accept-Ranges": "bytes",
                   "Content-Disposition": f'inline; filename="{PurePosixPath(path).name}"'}
        status, body = 200, data
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            start_s, _, end_s = rng[6:].split(",")[0].partition("-")
            size = len(data)
            if start_s == "":
                start, end = max(size - int(end_s or 0), 0), size - 1
            else:
                start, end = int(start_s), (int(end_s) if end_s else size - 1)
            end = min(end, size - 1)
            if start >= size or start > end:
                self._send(416, b"", {**headers, "Content-Range": f"bytes */{size}"})
                return
            status, body = 206, data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
        self._send(status, body, headers, content_type="application/octet-stream")


__all__ = ["HubCommit", "LoopbackHub", "git_blob_oid"]
