#!/usr/bin/env python3
"""Loopback stand-in for Gotify, ntfy, Telegram Bot API and plain webhooks (no real servers are
packaged in Debian/PyPI/npm). Records every request as one JSON line in LOG; GET /_requests returns them.
Fault injection: POST /_fail?status=503&count=2 makes the next 2 requests answer 503.
usage: notify_sink.py HOST PORT LOG [GOTIFY_TOKEN] [TELEGRAM_TOKEN] [CERT KEY]

proxkeep additions to the measured script (docs/test-infra.md §5): PORT 0 binds a free port and the first line
on stdout is "listening HOST:PORT"; POST /_slow?seconds=3&count=1 makes the next request answer only after that
delay (timeout tests); GET or POST under /ping/... is a Healthchecks-style ping endpoint (answers "OK");
CERT KEY (PEM files) serve HTTPS instead of HTTP (ca_file tests)."""
import email.parser, email.policy, json, ssl, sys, time, threading, urllib.parse
from http.server import ThreadingHTTPServer, BaseHTTPRequestHandler

HOST, PORT, LOG = sys.argv[1], int(sys.argv[2]), sys.argv[3]
GOTIFY_TOKEN = sys.argv[4] if len(sys.argv) > 4 else "gotify-app-token"
TG_TOKEN = sys.argv[5] if len(sys.argv) > 5 else "123456:TEST"
lock = threading.Lock(); records = []; fail = {"status": 0, "count": 0}; seq = [0]
slow = {"seconds": 0.0, "count": 0}

def chat_id(v):                     # a numeric id, or "@channelusername" (the Bot API takes both)
    try: return int(v)
    except (TypeError, ValueError): return str(v)

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code); self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        if self.path == "/_requests":
            with lock: return self.reply(200, records)
        if self.path.startswith("/ping"): return self.do_POST()
        if self.path in ("/health", "/v1/health"): return self.reply(200, {"health": "green", "healthy": True})
        self.reply(404, {"error": "not found"})
    def do_PUT(self): self.do_POST()
    def do_POST(self):
        u = urllib.parse.urlsplit(self.path); q = dict(urllib.parse.parse_qsl(u.query))
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if u.path == "/_fail":
            fail.update(status=int(q.get("status", 500)), count=int(q.get("count", 1))); return self.reply(200, fail)
        if u.path == "/_slow":
            slow.update(seconds=float(q.get("seconds", 3)), count=int(q.get("count", 1))); return self.reply(200, slow)
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            try: data = json.loads(raw or b"{}")
            except ValueError: data = None
        elif "x-www-form-urlencoded" in ctype: data = dict(urllib.parse.parse_qsl(raw.decode()))
        elif "multipart/form-data" in ctype:                        # curl -F (Gotify's documented form)
            m = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + raw)
            data = {part.get_param("name", header="content-disposition"): part.get_content()
                    for part in m.iter_parts()}
        else: data = None
        rec = {"time": time.time(), "method": self.command, "path": u.path, "query": q,
               "headers": {k.lower(): v for k, v in self.headers.items()},
               "body": raw.decode("utf-8", "replace"), "json": data}
        with lock:
            seq[0] += 1; rec["seq"] = seq[0]; records.append(rec)
            with open(LOG, "a") as f: f.write(json.dumps(rec) + "\n")
            delay = 0.0
            if slow["count"] > 0:
                slow["count"] -= 1; delay = slow["seconds"]
            if fail["count"] > 0:
                fail["count"] -= 1; return self.reply(fail["status"], {"error": "injected failure"})
        if delay:
            time.sleep(delay)
        if u.path.startswith("/ping"):                              # Healthchecks: 200 "OK"
            body = b"OK"
            self.send_response(200); self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2"); self.end_headers(); return self.wfile.write(body)
        data = data if isinstance(data, dict) else {}
        if u.path == "/message":                                    # Gotify
            tok = q.get("token") or self.headers.get("X-Gotify-Key") or \
                  (self.headers.get("Authorization") or "").removeprefix("Bearer ")
            if tok != GOTIFY_TOKEN:
                return self.reply(401, {"error": "Unauthorized", "errorCode": 401,
                                        "errorDescription": "you need to provide a valid access token or user credentials to access this api"})
            if not data.get("message"):
                return self.reply(400, {"error": "Bad Request", "errorCode": 400,
                                        "errorDescription": "Field 'message' is required"})
            return self.reply(200, {"id": seq[0], "appid": 1, "message": data["message"], "title": data.get("title", ""),
                                    "priority": int(data.get("priority", 0)), "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        if u.path.startswith("/bot"):                               # Telegram Bot API
            tok, _, method = u.path[4:].partition("/")
            if tok != TG_TOKEN: return self.reply(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
            if method == "getMe": return self.reply(200, {"ok": True, "result": {"id": 123456, "is_bot": True, "first_name": "test", "username": "test_bot"}})
            if method == "sendMessage":
                if not data.get("chat_id") or not data.get("text"):
                    return self.reply(400, {"ok": False, "error_code": 400, "description": "Bad Request: message text is empty"})
                return self.reply(200, {"ok": True, "result": {"message_id": seq[0], "date": int(time.time()),
                                        "chat": {"id": chat_id(data["chat_id"]), "type": "private"}, "text": data["text"]}})
            return self.reply(404, {"ok": False, "error_code": 404, "description": "Not Found"})
        if u.path.startswith("/hook"):                              # generic webhook
            return self.reply(200, {"ok": True})
        topic = u.path.strip("/") or data.get("topic", "")         # ntfy: POST/PUT /<topic> or JSON to /
        msg = data.get("message") if u.path == "/" else raw.decode("utf-8", "replace")
        title = data.get("title") or self.headers.get("X-Title") or self.headers.get("Title") or self.headers.get("t")
        return self.reply(200, {"id": f"m{seq[0]}", "time": int(time.time()), "expires": int(time.time()) + 43200,
                                "event": "message", "topic": topic, "message": msg, "title": title,
                                "priority": int(data.get("priority") or self.headers.get("X-Priority") or self.headers.get("Priority") or 3)})

srv = ThreadingHTTPServer((HOST, PORT), H)
if len(sys.argv) > 7:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH); tls.load_cert_chain(sys.argv[6], sys.argv[7])
    srv.socket = tls.wrap_socket(srv.socket, server_side=True)
print(f"listening {HOST}:{srv.server_address[1]}", flush=True)
srv.serve_forever()
