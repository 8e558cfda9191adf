"""A tiny product with a premium feature, checked by the Tessera Python
client: the Metabase scenario end to end (see examples/README.md).

    pip install ./clients/python
    TESSERA_SERVER=http://127.0.0.1:7400 TESSERA_PUBLIC_KEY=k4.public.… \\
    TESSERA_TOKEN=tsr_… PORT=3000 python examples/python/premium_app.py

Routes: GET / (the page), GET /status (JSON), POST /refresh (ask the
authority now), POST /activate (form field `token`)."""

import html
import json
import os
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tessera_client import Client

license = Client(
    servers=[os.environ.get("TESSERA_SERVER", "http://127.0.0.1:7400")],
    public_keys=[os.environ["TESSERA_PUBLIC_KEY"]],
    token=os.environ.get("TESSERA_TOKEN") or None,
    state_dir=os.environ.get("TESSERA_STATE_DIR", "tessera-state"),
)
license.add_listener(lambda v: print(f"license: {v.state} (revision {v.revision})", flush=True))


def status() -> dict:
    v, s = license.verdict, license.status
    return {
        "state": v.state,
        "reason": v.reason,
        "revision": v.revision,
        "premium": license.has_feature("premium"),
        "features": list(v.features),
        "last_verified_at": s.last_verified_at,
        "last_error": s.last_error.kind if s.last_error else None,
    }


def page() -> str:
    v = license.verdict
    premium = (
        "<p>Revenue by region, forecast, cohorts…</p>"
        if license.has_feature("premium")
        else "<p>Locked: the license does not grant <code>premium</code> now.</p>"
    )
    reason = f" ({html.escape(v.reason)})" if v.reason else ""
    return (
        "<!doctype html><title>Premium app</title><h1>Premium app</h1>"
        f"<p>License: <b id=state>{v.state}</b>{reason}, revision {v.revision}</p>"
        f"<section><h2>Premium report</h2>{premium}</section>"
        "<form method=post action=/refresh><button>Refresh now</button></form>"
        "<form method=post action=/activate><input name=token size=48 placeholder=tsr_…><button>Enter license</button></form>"
    )


class Handler(BaseHTTPRequestHandler):
    def send(self, code: int, kind: str, body: str) -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        if self.path == "/":
            self.send(200, "text/html; charset=utf-8", page())
        elif self.path == "/status":
            self.send(200, "application/json", json.dumps(status()))
        else:
            self.send(404, "text/plain", "not found\n")

    def do_POST(self):
        form = urllib.parse.parse_qs(self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode())
        try:
            if self.path == "/refresh":
                license.refresh()
            elif self.path == "/activate":
                license.activate((form.get("token") or [""])[0].strip())
            else:
                return self.send(404, "text/plain", "not found\n")
        except Exception as e:  # a typo, the authority unreachable: said, the verdict kept
            return self.send(422, "application/json", json.dumps({"error": str(e), "status": status()}))
        self.send(200, "application/json", json.dumps(status()))


if __name__ == "__main__":
    license.start()  # never waits for the network: the last verdict from disk at once
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "3000"))), Handler)
    print(f"premium app on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    server.serve_forever()
