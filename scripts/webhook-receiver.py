#!/usr/bin/env python3
"""A tiny webhook receiver for trying the ledger's webhooks locally (README "Webhooks and events").

Prints every delivery (event id, type, whether its signature verifies, the body) and answers 200
when the signature verifies with one of the secrets given, 400 otherwise. Standard library only.

    scripts/webhook-receiver.py --port 9000 --secret whsec_... [--secret whsec_old...] [--fail 2]

--fail N answers 500 to the first N deliveries (to watch the retries); --tolerance is the largest
difference, in seconds, between the signature's timestamp and this machine's clock (default 300).
"""

import argparse
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def verify(header, body, secrets, tolerance, now=None):
    """The receiver's check: t within tolerance, one v1 = HMAC-SHA256(secret, "<t>.<raw body>")."""
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    signatures = [v for k, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not signatures:
        return False, "malformed Ledger-Signature"
    t = int(stamps[0])
    if abs((now or time.time()) - t) > tolerance:
        return False, "timestamp outside the tolerance (a replay?)"
    payload = stamps[0].encode() + b"." + body
    for secret in secrets:
        expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
        if any(hmac.compare_digest(expected, s) for s in signatures):
            return True, "signature ok"
    return False, "no v1 matches the secret(s)"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--bind", default="127.0.0.1")
    parser.add_argument("--secret", action="append", default=[], help="whsec_... (repeat during a rotation)")
    parser.add_argument("--tolerance", type=int, default=300)
    parser.add_argument("--fail", type=int, default=0, help="answer 500 to the first N deliveries")
    args = parser.parse_args()
    if not args.secret:
        parser.error("give the endpoint's secret with --secret whsec_...")
    state = {"received": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state["received"] += 1
            ok, why = verify(self.headers.get("Ledger-Signature", ""), body, args.secret, args.tolerance)
            event_id = self.headers.get("Ledger-Event-Id", "?")
            event_type = self.headers.get("Ledger-Event-Type", "?")
            status = 200 if ok else 400
            if ok and state["received"] <= args.fail:
                status, why = 500, why + "; answering 500 (--fail)"
            try:
                shown = json.dumps(json.loads(body), indent=2)
            except ValueError:
                shown = body.decode(errors="replace")
            print(f"--- #{state['received']} {event_type} {event_id}: {why} -> {status}\n{shown}", flush=True)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_):
            pass

    print(f"webhook-receiver: listening on http://{args.bind}:{args.port}/", file=sys.stderr, flush=True)
    ThreadingHTTPServer((args.bind, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
