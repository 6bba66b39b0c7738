"""A webhook receiver for the alerting tests, and an independent signature check.

    webhook_receiver.py serve PORT_FILE LOG SCRIPT_JSON [CERT KEY]
        Serves HTTP (HTTPS with CERT and KEY) on a free loopback port (written to PORT_FILE). Each path answers with its
        scripted statuses in turn, the last one repeating ({"/flaky": [500, 500, 200]}); a 429
        says Retry-After: 1. Every request is appended to LOG as one JSON line.

    webhook_receiver.py verify LOG PATH SECRET
        Checks the Standard Webhooks signature of every request logged for PATH with Python's
        hmac, and prints a JSON summary.
"""

import base64
import hashlib
import hmac
import http.server
import json
import ssl
import sys
import threading
import time


def serve(port_file, log_path, script, cert=None, key=None):
    lock = threading.Lock()
    served = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", "0"))).decode()
            with lock:
                n = served.get(self.path, 0)
                served[self.path] = n + 1
                statuses = script.get(self.path, [200])
                status = statuses[min(n, len(statuses) - 1)]
                with open(log_path, "a") as log:
                    log.write(json.dumps({
                        "path": self.path,
                        "at": time.time(),
                        "status": status,
                        "headers": {k.lower(): v for k, v in self.headers.items()},
                        "body": body,
                    }) + "\n")
            self.send_response(status)
            if status == 429:
                self.send_header("retry-after", "1")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    with open(port_file, "w") as f:
        f.write(str(server.server_address[1]))
    print("listening", flush=True)
    server.serve_forever()


def verify(log_path, path, secret):
    key = base64.b64decode(secret.removeprefix("whsec_"))
    requests = []
    with open(log_path) as log:
        for line in log:
            entry = json.loads(line)
            if entry["path"] != path:
                continue
            h = entry["headers"]
            signed = f'{h["webhook-id"]}.{h["webhook-timestamp"]}.{entry["body"]}'.encode()
            expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
            given = [s.split(",", 1)[1] for s in h["webhook-signature"].split() if s.startswith("v1,")]
            requests.append({
                "id": h["webhook-id"],
                "status": entry["status"],
                "valid": any(hmac.compare_digest(expected, g) for g in given),
                "type": json.loads(entry["body"])["type"],
            })
    print(json.dumps(requests))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], json.loads(sys.argv[4]), *sys.argv[5:7])
    else:
        verify(sys.argv[2], sys.argv[3], sys.argv[4])
