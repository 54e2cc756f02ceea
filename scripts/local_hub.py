"""A Hub on 127.0.0.1 for offline machines: push to it, then `from_pretrained("org/name")` from it.

    python scripts/local_hub.py --root local_hub --port 8090     # or: make local-hub
    export HF_ENDPOINT=http://127.0.0.1:8090 HF_TOKEN=hf_local

Downloads are served by the `olah` Hub mirror (run from `.venv-olah`, `make local-hub-deps`) from git repositories
under `ROOT/mirrors/models/ORG/NAME`; uploads (`create_repo` + `upload_folder`/`push_to_hub`, which huggingface_hub
sends as base64 files in one commit) are committed into those repositories by this script. Every other request is
forwarded to olah unchanged, except two answers in which olah 0.5.4 (offline, local mirrors) differs from the Hub
and which the load paths depend on:

- `GET /api/models/ORG/NAME` (repository info without a revision) answers 401 RepoNotFound; it is forwarded as
  `/api/models/ORG/NAME/revision/main`, which olah answers.
- A file or folder missing from an existing repository (`resolve/...`, `api/models/ORG/NAME/tree/...`) answers
  401 RepoNotFound where the Hub answers 404 EntryNotFound; transformers probes optional files and folders
  (`adapter_config.json`, `generation_config.json`, `additional_chat_templates/`) and treats only the latter as
  "absent". Such answers are rewritten to 404 EntryNotFound.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIT_IDENTITY = ["-c", "user.name=local-hub", "-c", "user.email=local-hub@127.0.0.1", "-c", "commit.gpgsign=false"]
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate"}
REPO_INFO = re.compile(r"^/api/(models|datasets|spaces)/([^/?]+)/([^/?]+)(\?.*)?$")
RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+)/([^/]+)/resolve/")
API_PATH = re.compile(r"^/api/(models|datasets|spaces)/([^/]+)/([^/?]+)/(tree|paths-info|resolve)/")


def find_olah_cli() -> str:
    candidates = [
        os.environ.get("GENXFER_OLAH_CLI"),
        os.path.join(REPO_ROOT, ".venv-olah", "bin", "olah-cli"),
        shutil.which("olah-cli"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(
        "The olah Hub mirror is not installed: run `make local-hub-deps` (it installs olah into .venv-olah) "
        "or set GENXFER_OLAH_CLI to an olah-cli executable."
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _git(repo_dir: str, *args: str) -> str:
    result = subprocess.run(["git", *GIT_IDENTITY, *args], cwd=repo_dir, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed in {repo_dir}: {result.stderr.strip()}")
    return result.stdout.strip()


class LocalHub:
    """olah plus an upload front on one address; use as a context manager or call `start()`/`stop()`."""

    def __init__(self, root: str, port: int = 0, olah_cli: str | None = None):
        self.root = os.path.abspath(root)
        self.mirrors = os.path.join(self.root, "mirrors")
        self.olah_cli = olah_cli or find_olah_cli()
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status) as the client saw them
        self._lock = threading.Lock()
        self._olah: subprocess.Popen | None = None
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self.port = self.httpd.server_port
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.olah_port = _free_port()
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    # repositories

    def repo_dir(self, repo_id: str, repo_type: str = "models") -> str:
        return os.path.join(self.mirrors, repo_type, *repo_id.split("/"))

    def has_repo(self, repo_id: str, repo_type: str = "models") -> bool:
        return os.path.isdir(os.path.join(self.repo_dir(repo_id, repo_type), ".git"))

    def create_repo(self, repo_id: str, repo_type: str = "models", private: bool = False) -> None:
        """An empty repository with one commit on `main` (the Hub's own first commit adds .gitattributes)."""
        with self._lock:
            folder = self.repo_dir(repo_id, repo_type)
            if self.has_repo(repo_id, repo_type):
                return
            os.makedirs(folder, exist_ok=True)
            _git(folder, "init", "-q", "-b", "main")
            with open(os.path.join(folder, ".gitattributes"), "w") as handle:
                handle.write("*.safetensors filter=lfs diff=lfs merge=lfs -text\n")
            _git(folder, "add", "-A")
            _git(folder, "commit", "-q", "-m", "initial commit")
            with open(os.path.join(self.root, "private.json"), "a") as handle:
                handle.write(json.dumps({"repo": repo_id, "private": private}) + "\n")

    def commit(self, repo_id: str, repo_type: str, entries: list[dict]) -> str:
        """Applies one huggingface_hub commit (ndjson entries) and returns the new commit's sha."""
        with self._lock:
            folder = self.repo_dir(repo_id, repo_type)
            summary = "Upload with huggingface_hub"
            for entry in entries:
                key, value = entry["key"], entry["value"]
                if key == "header":
                    summary = value.get("summary") or summary
                elif key == "file":
                    path = os.path.normpath(value["path"])
                    if path.startswith("..") or os.path.isabs(path) or path.split(os.sep)[0] == ".git":
                        raise ValueError(f"refusing the path {value['path']!r}")
                    if value.get("encoding") != "base64":
                        raise ValueError(f"{value['path']}: only base64 file content is supported")
                    target = os.path.join(folder, path)
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with open(target, "wb") as handle:
                        handle.write(base64.b64decode(value["content"]))
                elif key in ("deletedFile", "deletedFolder"):
                    target = os.path.join(folder, os.path.normpath(value["path"]))
                    if os.path.isdir(target):
                        shutil.rmtree(target)
                    elif os.path.isfile(target):
                        os.remove(target)
                else:
                    raise ValueError(f"commit entries of kind {key!r} are not supported by the local Hub")
            _git(folder, "add", "-A")
            _git(folder, "commit", "-q", "--allow-empty", "-m", summary)
            return _git(folder, "rev-parse", "HEAD")

    # serving

    def _handler_class(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send_json(self, code: int, payload: dict, headers: dict | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)
                hub.requests.append((self.command, self.path, code))

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not self.headers.get("authorization", "").startswith("Bearer "):
                    return self._send_json(401, {"error": "a token is required: set HF_TOKEN (any value)"})
                if self.path == "/api/repos/create":
                    body = json.loads(data)
                    name = body["name"]
                    repo = f"{body['organization']}/{name}" if body.get("organization") else name
                    if "/" not in repo:
                        return self._send_json(400, {"error": "name the repository as ORG/NAME"})
                    repo_type = (body.get("type") or "model") + "s"
                    private = body.get("visibility") == "private" or bool(body.get("private"))
                    hub.create_repo(repo, repo_type, private)
                    return self._send_json(200, {"url": f"{hub.endpoint}/{repo}", "name": repo})
                if self.path == "/api/validate-yaml":
                    try:
                        yaml.safe_load(json.loads(data)["content"].split("---")[1])
                    except Exception as error:  # noqa: BLE001 - the answer is the point
                        return self._send_json(400, {"error": f"invalid YAML: {error}"})
                    return self._send_json(200, {"warnings": []})
                match = re.match(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+)/(preupload|commit)/", self.path)
                if match:
                    repo_type, repo, action = match.groups()
                    if not hub.has_repo(repo, repo_type):
                        return self._send_json(404, {"error": f"repository {repo} not found"}, _not_found("Repo"))
                    if action == "preupload":
                        files = json.loads(data)["files"]
                        modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                        return self._send_json(200, {"files": modes})
                    try:
                        oid = hub.commit(repo, repo_type, [json.loads(line) for line in data.decode().splitlines()])
                    except ValueError as error:
                        return self._send_json(400, {"error": str(error)})
                    url = f"{hub.endpoint}/{repo}/commit/{oid}"
                    return self._send_json(200, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None})
                self._send_json(404, {"error": f"the local Hub has no route POST {self.path}"})

            def do_GET(self):
                self._forward()

            def do_HEAD(self):
                self._forward()

            def _forward(self):
                path = self.path
                info = REPO_INFO.match(path)
                if info and info.group(3) not in ("revision", "tree", "refs"):
                    path = f"/api/{info.group(1)}/{info.group(2)}/{info.group(3)}/revision/main{info.group(4) or ''}"
                # No compression: huggingface_hub checks a download's size against the announced one.
                skip = HOP_BY_HOP | {"host", "accept-encoding"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                connection = http.client.HTTPConnection("127.0.0.1", hub.olah_port, timeout=60)
                try:
                    connection.request(self.command, path, headers=headers)
                    response = connection.getresponse()
                    body = b"" if self.command == "HEAD" else response.read()
                    status, answer_headers = response.status, response.getheaders()
                finally:
                    connection.close()
                if status == 401:
                    resolve, api = RESOLVE.match(self.path), API_PATH.match(self.path)
                    repo_type, repo = None, None
                    if resolve:
                        repo_type, repo = resolve.group(1) or "models", f"{resolve.group(2)}/{resolve.group(3)}"
                    elif api:
                        repo_type, repo = api.group(1), f"{api.group(2)}/{api.group(3)}"
                    if repo and hub.has_repo(repo, repo_type):
                        return self._send_json(404, {"error": "Entry not found"}, _not_found("Entry"))
                self.send_response(status)
                for key, value in answer_headers:
                    if key.lower() in HOP_BY_HOP or key.lower() in ("server", "date"):
                        continue
                    if key.lower() == "content-length" and self.command != "HEAD":
                        continue
                    self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if body:
                    self.wfile.write(body)
                hub.requests.append((self.command, self.path, status))

        return Handler

    def start(self, timeout: float = 60.0) -> LocalHub:
        os.makedirs(os.path.join(self.mirrors, "models"), exist_ok=True)
        config = os.path.join(self.root, "olah.toml")
        with open(config, "w") as handle:
            handle.write(
                "[basic]\n"
                f'host = "127.0.0.1"\nport = {self.olah_port}\n'
                f'repos-path = "{os.path.join(self.root, "olah-cache")}"\n'
                f'mirrors-path = ["{self.mirrors}"]\n'
                f'mirror-scheme = "http"\nmirror-netloc = "127.0.0.1:{self.port}"\n'
                f'mirror-lfs-netloc = "127.0.0.1:{self.port}"\n'
                "[accessibility]\noffline = true\n"
            )
        self._log = open(os.path.join(self.root, "olah.log"), "ab")
        self._olah = subprocess.Popen(
            [self.olah_cli, "-c", config], cwd=self.root, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout
        while True:
            if self._olah.poll() is not None:
                raise RuntimeError(f"olah exited with code {self._olah.returncode}; see {self._log.name}")
            try:
                socket.create_connection(("127.0.0.1", self.olah_port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"olah did not start within {timeout:.0f} s; see {self._log.name}") from None
                time.sleep(0.2)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():
            self.httpd.shutdown()
        self.httpd.server_close()
        if self._olah is not None and self._olah.poll() is None:
            self._olah.terminate()
            try:
                self._olah.wait(10)
            except subprocess.TimeoutExpired:
                self._olah.kill()
        if getattr(self, "_log", None):
            self._log.close()

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _not_found(what: str) -> dict:
    return {"X-Error-Code": f"{what}NotFound", "X-Error-Message": f"{what} not found"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="local_hub", help="where repositories and olah's cache live")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    try:
        hub = LocalHub(args.root, args.port).start()
    except (FileNotFoundError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"Local Hub at {hub.endpoint} (repositories in {hub.mirrors}). In another shell:")
    print(f"  export HF_ENDPOINT={hub.endpoint} HF_TOKEN=hf_local")
    print("Ctrl-C stops it.", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` stops olah too, like Ctrl-C
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        hub.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
