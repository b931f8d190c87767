"""A minimal reverse proxy: forwards GET/POST to $UPSTREAM when the client sends $API_KEY."""
import http.server
import os
import urllib.request

UPSTREAM = os.environ.get("UPSTREAM", "http://127.0.0.1:81")
API_KEY = os.environ.get("API_KEY", "")


class Proxy(http.server.BaseHTTPRequestHandler):
    def _forward(self):
        if API_KEY and self.headers.get("X-Api-Key") != API_KEY:
            self.send_error(401, "missing or wrong X-Api-Key")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        req = urllib.request.Request(UPSTREAM + self.path, data=body, method=self.command)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                data = resp.read()
                self.send_response(resp.status)
                self.send_header("Content-Type", resp.headers.get("Content-Type", "application/octet-stream"))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
        except OSError as e:
            self.send_error(502, f"upstream error: {e}")

    do_GET = _forward
    do_POST = _forward


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("0.0.0.0", 8080), Proxy).serve_forever()
