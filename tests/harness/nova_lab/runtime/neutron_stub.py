"""The little of Neutron that Nova asks for when servers boot with networks='none'.

Nova lists ports, networks and the like on boot, evacuation and deletion; each list is empty and
any single resource is missing. Writes are refused. Usage: neutron_stub.py PORT
"""

from __future__ import annotations

import json
import re
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESOURCE_ID = re.compile(r"[0-9a-f-]{36}")


class Handler(BaseHTTPRequestHandler):
    def _answer(self, code: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        path = self.path.split("?")[0].rstrip("/")
        if path == "":
            href = f"http://127.0.0.1:{self.server.server_port}/v2.0/"
            links = [{"href": href, "rel": "self"}]
            self._answer(200, {"versions": [{"id": "v2.0", "status": "CURRENT", "links": links}]})
            return
        last = path.rsplit("/", 1)[-1].removesuffix(".json")
        if RESOURCE_ID.fullmatch(last):
            self._not_found()
        else:
            self._answer(200, {last.replace("-", "_"): []})

    def _not_found(self) -> None:
        error = {"type": "NotFound", "message": "not in the lab's Neutron stub", "detail": ""}
        self._answer(404, {"NeutronError": error})

    do_POST = do_PUT = do_DELETE = _not_found

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write(f"{self.log_date_time_string()} {format % args}\n")


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
