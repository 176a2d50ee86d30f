"""hsm-test/chunker: a tiny text-chunking HTTP service (Python standard library only).

    GET  /health  -> 200 {"status": "ok"}
    POST /chunk   {"text": "...", "size": N}  -> 200 {"chunks": [...]}
                  splits text into consecutive pieces of at most N characters
                  (N defaults to CHUNKER_DEFAULT_SIZE, else 200); 400 on bad input

Listens on 0.0.0.0:$CHUNKER_PORT (default 8000). Logs one line per request to stdout.
Exits 0 on SIGTERM/SIGINT, so `docker stop` is quick and clean.
"""

import json
import os
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 16 * 1024 * 1024


def log(message):
    print(message, flush=True)


def chunk(text, size):
    return [text[i : i + size] for i in range(0, len(text), size)]


class Handler(BaseHTTPRequestHandler):
    server_version = "hsm-test-chunker/1"

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        log("%s %s" % (self.address_string(), format % args))

    def reply(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path.split("?", 1)[0] == "/health":
            self.reply(200, {"status": "ok"})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        if self.path.split("?", 1)[0] != "/chunk":
            self.reply(404, {"error": "not found"})
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.reply(400, {"error": "bad Content-Length"})
            return
        try:
            body = json.loads(self.rfile.read(length) or b"null")
        except ValueError as e:
            self.reply(400, {"error": "body is not JSON: %s" % e})
            return
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            self.reply(400, {"error": 'expected {"text": "...", "size": N}'})
            return
        size = body.get("size", self.server.default_size)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            self.reply(400, {"error": "size must be a positive integer"})
            return
        self.reply(200, {"chunks": chunk(body["text"], size)})


def main():
    port = int(os.environ.get("CHUNKER_PORT") or 8000)
    default_size = int(os.environ.get("CHUNKER_DEFAULT_SIZE") or 200)
    server = ThreadingHTTPServer(("0.0.0.0", port), Handler)
    server.daemon_threads = True
    server.default_size = default_size

    def stop(signum, _frame):
        log("chunker: signal %d, shutting down" % signum)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log("chunker: listening on 0.0.0.0:%d (default size %d)" % (port, default_size))
    try:
        server.serve_forever()
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
