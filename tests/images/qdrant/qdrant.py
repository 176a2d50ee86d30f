"""hsm-test/qdrant: a stand-in for the part of Qdrant's HTTP API that hsm uses.

Python standard library only. Not a vector database: it keeps collection configs.

    GET    /                          {"title": "qdrant - vector search engine", "version": ...}
    GET    /healthz, /livez, /readyz  200 text, like Qdrant (no API key needed, like Qdrant)
    GET    /collections               {"result": {"collections": [{"name": ...}]}, ...}
    PUT    /collections/{name}        create (JSON body optional, e.g. {"vectors": {...}});
                                      409 if it exists
    GET    /collections/{name}        collection info; 404 if missing
    GET    /collections/{name}/exists {"result": {"exists": bool}}
    DELETE /collections/{name}        {"result": true|false}

Environment (same names as Qdrant's config overrides):
    QDRANT__SERVICE__API_KEY            when set, every other request needs header
                                        `api-key: KEY` (or `Authorization: Bearer KEY`); 401 otherwise
    QDRANT__SERVICE__READ_ONLY_API_KEY  key that may only read (GET); writes get 403
    QDRANT__SERVICE__HTTP_PORT          default 6333
    QDRANT__SERVICE__HOST               default 0.0.0.0
    QDRANT__STORAGE__STORAGE_PATH       default /qdrant/storage; collections persist there
                                        as collections/{name}/config.json
Logs one line per request to stdout (never the key). Exits 0 on SIGTERM/SIGINT.
"""

import hmac
import json
import os
import re
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

VERSION = "1.12.0-hsm-test"
NAME_RE = re.compile(r"^[^/\\\x00]{1,255}$")
UNAUTHENTICATED = {"/", "/healthz", "/livez", "/readyz"}
MAX_BODY = 16 * 1024 * 1024


def log(message):
    print(message, flush=True)


class Store:
    """Collections on disk: one JSON file per collection, written atomically."""

    def __init__(self, root):
        self.dir = os.path.join(root, "collections")
        os.makedirs(self.dir, exist_ok=True)
        self.lock = threading.Lock()

    def _path(self, name):
        return os.path.join(self.dir, name, "config.json")

    def names(self):
        with self.lock:
            return sorted(n for n in os.listdir(self.dir) if os.path.isfile(self._path(n)))

    def get(self, name):
        with self.lock:
            try:
                with open(self._path(name)) as f:
                    return json.load(f)
            except FileNotFoundError:
                return None

    def create(self, name, config):
        with self.lock:
            path = self._path(name)
            if os.path.exists(path):
                return False
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".config.")
            with os.fdopen(fd, "w") as f:
                json.dump(config, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
            return True

    def delete(self, name):
        with self.lock:
            path = self._path(name)
            if not os.path.exists(path):
                return False
            os.remove(path)
            try:
                os.rmdir(os.path.dirname(path))
            except OSError:
                pass
            return True


class Handler(BaseHTTPRequestHandler):
    server_version = "hsm-test-qdrant/1"
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        log("%s %s" % (self.address_string(), format % args))

    # -- replies -------------------------------------------------------------
    def send(self, status, data, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def ok(self, result, status=200):
        body = {"result": result, "status": "ok", "time": time.perf_counter() - self.t0}
        self.send(status, json.dumps(body).encode(), "application/json")

    def error(self, status, message):
        body = {"status": {"error": message}, "time": time.perf_counter() - self.t0}
        self.send(status, json.dumps(body).encode(), "application/json")

    def text(self, message):
        self.send(200, message.encode(), "text/plain; charset=utf-8")

    # -- auth ----------------------------------------------------------------
    def presented_key(self):
        key = self.headers.get("api-key")
        if key is None:
            auth = self.headers.get("Authorization") or ""
            if auth[:7].lower() == "bearer ":
                key = auth[7:].strip()
        return key

    def authorised(self, path):
        """Returns True, or sends 401/403 and returns False."""
        full, read_only = self.server.api_key, self.server.read_only_key
        if path in UNAUTHENTICATED or not (full or read_only):
            return True
        key = self.presented_key()
        if key is None:
            self.error(401, "Unauthorized: must provide an API key or an Authorization bearer token")
            return False
        if full and hmac.compare_digest(key.encode(), full.encode()):
            return True
        if read_only and hmac.compare_digest(key.encode(), read_only.encode()):
            if self.command in ("GET", "HEAD"):
                return True
            self.error(403, "Forbidden: write access denied for a read-only API key")
            return False
        self.error(401, "Unauthorized: invalid API key")
        return False

    # -- routing -------------------------------------------------------------
    def handle_any(self):
        self.t0 = time.perf_counter()
        path = self.path.split("?", 1)[0]
        if len(path) > 1:
            path = path.rstrip("/")
        body = None
        length = self.headers.get("Content-Length")
        if length:
            try:
                n = int(length)
                if n < 0 or n > MAX_BODY:
                    raise ValueError
                body = self.rfile.read(n)
            except ValueError:
                self.error(400, "Bad Content-Length")
                return
        if not self.authorised(path):
            return
        parts = [unquote(p) for p in path.split("/")[1:]]
        method = "GET" if self.command == "HEAD" else self.command

        if method == "GET" and path == "/":
            self.send(200, json.dumps({"title": "qdrant - vector search engine", "version": VERSION}).encode(), "application/json")
        elif method == "GET" and path in ("/healthz", "/livez"):
            self.text("healthz check passed")
        elif method == "GET" and path == "/readyz":
            self.text("all shards are ready")
        elif parts == ["collections"] and method == "GET":
            self.ok({"collections": [{"name": n} for n in self.server.store.names()]})
        elif len(parts) in (2, 3) and parts[0] == "collections":
            self.collection(method, parts[1], parts[2] if len(parts) == 3 else None, body)
        else:
            self.error(404, "Not found: %s %s" % (self.command, path))

    def collection(self, method, name, sub, body):
        store = self.server.store
        if not NAME_RE.match(name) or name in (".", ".."):
            self.error(422, "Validation error in path parameters: [name]: invalid collection name")
            return
        if sub == "exists" and method == "GET":
            self.ok({"exists": store.get(name) is not None})
        elif sub is not None:
            self.error(404, "Not found: %s %s" % (self.command, self.path))
        elif method == "PUT":
            try:
                params = json.loads(body) if body else {}
                if not isinstance(params, dict):
                    raise ValueError("expected a JSON object")
            except ValueError as e:
                self.error(400, "Format error in JSON body: %s" % e)
                return
            if store.create(name, {"params": params, "created_at": time.time()}):
                log("collection %r created" % name)
                self.ok(True)
            else:
                self.error(409, "Wrong input: Collection `%s` already exists!" % name)
        elif method == "GET":
            config = store.get(name)
            if config is None:
                self.error(404, "Not found: Collection `%s` doesn't exist!" % name)
                return
            self.ok(
                {
                    "status": "green",
                    "optimizer_status": "ok",
                    "indexed_vectors_count": 0,
                    "points_count": 0,
                    "segments_count": 0,
                    "config": {"params": config.get("params", {})},
                    "payload_schema": {},
                }
            )
        elif method == "DELETE":
            deleted = store.delete(name)
            if deleted:
                log("collection %r deleted" % name)
            self.ok(deleted)
        else:
            self.error(405, "Method not allowed: %s %s" % (self.command, self.path))

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = handle_any


def main():
    env = os.environ
    host = env.get("QDRANT__SERVICE__HOST") or "0.0.0.0"
    port = int(env.get("QDRANT__SERVICE__HTTP_PORT") or 6333)
    storage = env.get("QDRANT__STORAGE__STORAGE_PATH") or "/qdrant/storage"
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.store = Store(storage)
    server.api_key = env.get("QDRANT__SERVICE__API_KEY") or None
    server.read_only_key = env.get("QDRANT__SERVICE__READ_ONLY_API_KEY") or None

    def stop(signum, _frame):
        log("qdrant: signal %d, shutting down" % signum)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log(
        "qdrant (hsm test stand-in %s): listening on %s:%d, storage %s, api key %s"
        % (VERSION, host, port, storage, "required" if server.api_key or server.read_only_key else "not required")
    )
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
