"""A local stand-in for the Hub's upload API (create repo, validate README YAML, preupload, commit) on 127.0.0.1.

It implements only what huggingface_hub's `create_repo` + `upload_folder` call, checks the requests, and records
each commit's files (decoded) so tests can inspect exactly what a push sends.
"""

import base64
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml


class HubUploadServer:
    def __init__(self):
        self.repos: dict[str, dict] = {}  # repo id -> {"private": bool, "files": {path: bytes}}
        self.requests: list[tuple[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code, payload):
                body = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                server.requests.append(("GET", self.path))
                self._send(404, {"error": "not found"})

            def do_POST(self):
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append(("POST", self.path))
                if not self.headers.get("authorization", "").startswith("Bearer "):
                    return self._send(401, {"error": "a token is required"})
                if self.path == "/api/repos/create":
                    body = json.loads(data)
                    repo = f"{body['organization']}/{body['name']}" if body.get("organization") else body["name"]
                    private = body.get("visibility") == "private" or bool(body.get("private"))
                    server.repos.setdefault(repo, {"private": private, "files": {}})
                    return self._send(200, {"url": f"http://127.0.0.1:{port}/{repo}", "name": repo})
                if self.path == "/api/validate-yaml":
                    try:
                        front_matter = json.loads(data)["content"].split("---")[1]
                        yaml.safe_load(front_matter)
                    except Exception as error:  # noqa: BLE001 - the answer is the point
                        return self._send(400, {"error": f"invalid YAML: {error}"})
                    return self._send(200, {"warnings": []})
                if "/preupload/" in self.path:
                    files = json.loads(data)["files"]
                    modes = [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]
                    return self._send(200, {"files": modes})
                if "/commit/" in self.path:
                    repo = self.path.split("/api/models/")[1].split("/commit/")[0]
                    if repo not in server.repos:
                        return self._send(404, {"error": f"repository {repo} not found"})
                    for line in data.decode().splitlines():
                        entry = json.loads(line)
                        if entry["key"] == "file":
                            value = entry["value"]
                            assert value["encoding"] == "base64" and not value["path"].startswith("/")
                            server.repos[repo]["files"][value["path"]] = base64.b64decode(value["content"])
                    oid = "a" * 40
                    url = f"http://127.0.0.1:{port}/{repo}/commit/{oid}"
                    return self._send(200, {"commitUrl": url, "commitOid": oid, "pullRequestUrl": None})
                self._send(404, {"error": f"no route {self.path}"})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.httpd.server_port
        self.endpoint = f"http://127.0.0.1:{port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
