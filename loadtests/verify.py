#!/usr/bin/env python3
"""Correctness spot-check for the redirect path, run after a load phase.

Samples `--sample` click tokens from a `token<TAB>url` file and checks that
GET /c/<token> answers 302/307 with exactly the minted Location,
`Cache-Control: no-store` and a Referrer-Policy; that HEAD does the same;
that pixel tokens answer 200 image/gif with 43 bytes; and that a forged
token (one MAC character changed) and garbage get 404 with a JSON error.
Prints one JSON object; exit status 1 if anything was wrong.
"""

import argparse
import http.client
import json
import random
import sys
from urllib.parse import urlsplit

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--clicks", required=True, help="token<TAB>url file")
    p.add_argument("--pixels", help="pixel token file")
    p.add_argument("--sample", type=int, default=300)
    args = p.parse_args()
    u = urlsplit(args.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
    problems = []

    def get(method, path):
        conn.request(method, path)
        r = conn.getresponse()
        body = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, body

    with open(args.clicks) as f:
        pairs = [line.rstrip("\n").split("\t", 1) for line in f if "\t" in line]
    rng = random.Random(42)
    sample = rng.sample(pairs, min(args.sample, len(pairs)))
    checked = 0
    for tok, url in sample:
        for method in ("GET", "HEAD"):
            status, h, _ = get(method, "/c/" + tok)
            checked += 1
            if status not in (302, 307):
                problems.append("%s /c/%s... -> %d" % (method, tok[:8], status))
            elif h.get("location") != url:
                problems.append("%s /c/%s... Location %r != minted %r" % (method, tok[:8], h.get("location"), url))
            elif h.get("cache-control") != "no-store" or "referrer-policy" not in h:
                problems.append("%s /c/%s... cache-control %r referrer-policy %r" % (method, tok[:8], h.get("cache-control"), h.get("referrer-policy")))
    if args.pixels:
        with open(args.pixels) as f:
            px = [line.strip() for line in f if line.strip()]
        for tok in rng.sample(px, min(50, len(px))):
            status, h, body = get("GET", "/o/" + tok)
            checked += 1
            if status != 200 or h.get("content-type") != "image/gif" or len(body) != 43:
                problems.append("GET /o/%s... -> %d %r %d bytes" % (tok[:8], status, h.get("content-type"), len(body)))
    # Forged: change the last character (part of the payload, so the MAC no longer matches).
    for tok, _ in sample[:20]:
        last = tok[-1]
        forged = tok[:-1] + ALPHABET[(ALPHABET.index(last) + 1) % 62]
        status, h, body = get("GET", "/c/" + forged)
        checked += 1
        if status != 404 or not body.startswith(b"{"):
            problems.append("forged /c/%s... -> %d %r" % (forged[:8], status, body[:80]))
    for junk in ("x", "A" * 35, "../../etc/passwd", "%00"):
        status, _, body = get("GET", "/c/" + junk)
        checked += 1
        if status != 404:
            problems.append("junk /c/%r -> %d" % (junk, status))
    print(json.dumps({"checked": checked, "problems": len(problems), "examples": problems[:5]}))
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
