#!/usr/bin/env python3
"""Mint load generator for linktrack: POST /v1/links from N concurrent
keep-alive HTTP/1.1 connections (asyncio, stdlib only).

Each request is one letter: a recipient, a mailing and `--links` links (plus
the open pixel with `--pixel`). Every request carries a distinct recipient,
and its URLs come from a per-mailing set of `--distinct-urls` URLs, as in a
real send where a mailing's few links go to every recipient.

Runs for `--duration` seconds or until `--count` requests were sent, then
prints one JSON object with throughput, latency percentiles, the status
histogram, a sample error body, and a per-second timeline summary (to spot
stalls). With `--tokens-out` the minted click tokens are written as
`token<TAB>url` lines, in completion order; `--pixel-tokens-out` likewise for
pixel tokens.
"""

import argparse
import asyncio
import json
import re
import sys
import time
from urllib.parse import urlsplit

TOKEN_RE = re.compile(rb'"url":"((?:[^"\\]|\\.)*)","token":"([0-9A-Za-z-]+)"')
PIXEL_RE = re.compile(rb'"pixel":\{"token":"([0-9A-Za-z-]+)"')


def percentile(sorted_values, p):
    if not sorted_values:
        return None
    k = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[k]


class Stats:
    def __init__(self):
        self.latencies = []  # seconds, successful requests only
        self.statuses = {}
        self.error_sample = None
        self.conn_errors = 0
        self.conn_error_sample = None
        self.links_minted = 0
        self.letters_ok = 0
        self.per_second = {}  # second index -> [ok count, max latency]
        self.click_tokens = []
        self.pixel_tokens = []


def build_links_json(mailing, n_links, distinct_urls):
    items = []
    for i in range(n_links):
        u = i % distinct_urls
        items.append('{"url":"https://shop.example/item/%d?utm_source=mail&utm_campaign=%s&pos=%d"}' % (u * 7 + 3, mailing, u))
    return "[" + ",".join(items) + "]"


async def worker(wid, args, host, port, path, stats, next_request, deadline, t0, link_sets):
    reader = writer = None
    auth = ("Bearer " + args.key).encode()
    while True:
        n = next_request()
        if n is None or time.monotonic() >= deadline:
            break
        mailing_idx = n % len(link_sets)
        mailing, links_json = link_sets[mailing_idx]
        body = ('{"mailing_id":"%s","recipient":"user%d@example.com","links":%s,"pixel":%s}' % (
            mailing, n, links_json, "true" if args.pixel else "false")).encode()
        head = (b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\nAuthorization: " + auth +
                b"\r\nContent-Type: application/json\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n")
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            start = time.monotonic()
            writer.write(head + body)
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), args.timeout)
            if not status_line:
                raise ConnectionError("connection closed before status line")
            status = int(status_line.split(b" ", 2)[1])
            length = 0
            close = False
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                k, _, v = line.partition(b":")
                k = k.strip().lower()
                if k == b"content-length":
                    length = int(v.strip())
                elif k == b"connection" and v.strip().lower() == b"close":
                    close = True
            resp = await reader.readexactly(length) if length else b""
            elapsed = time.monotonic() - start
        except (OSError, ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError, IndexError) as e:
            stats.conn_errors += 1
            if stats.conn_error_sample is None:
                stats.conn_error_sample = repr(e)
            if writer is not None:
                writer.close()
            reader = writer = None
            continue
        stats.statuses[status] = stats.statuses.get(status, 0) + 1
        if status == 201:
            stats.latencies.append(elapsed)
            stats.letters_ok += 1
            sec = int(time.monotonic() - t0)
            slot = stats.per_second.setdefault(sec, [0, 0.0])
            slot[0] += 1
            if elapsed > slot[1]:
                slot[1] = elapsed
            pairs = TOKEN_RE.findall(resp)
            stats.links_minted += len(pairs)
            if args.tokens_out:
                stats.click_tokens.extend(pairs)
            if args.pixel:
                m = PIXEL_RE.search(resp)
                if m:
                    stats.links_minted += 1
                    if args.pixel_tokens_out:
                        stats.pixel_tokens.append(m.group(1))
            expected = args.links + (1 if args.pixel else 0)
            got = len(pairs) + (1 if args.pixel and PIXEL_RE.search(resp) else 0)
            if got != expected:
                stats.statuses["201-short"] = stats.statuses.get("201-short", 0) + 1
        elif stats.error_sample is None:
            stats.error_sample = "%d %s" % (status, resp[:300].decode("utf-8", "replace"))
        if close:
            writer.close()
            reader = writer = None
    if writer is not None:
        writer.close()


async def main_async(args):
    u = urlsplit(args.url)
    host, port = u.hostname, u.port or 80
    path = "/v1/links"
    stats = Stats()
    counter = [0]

    def next_request():
        if args.count and counter[0] >= args.count:
            return None
        counter[0] += 1
        return args.start + counter[0]

    link_sets = []
    for m in range(args.mailings):
        mailing = "m-%d" % m
        link_sets.append((mailing, build_links_json(mailing, args.links, args.distinct_urls)))
    t0 = time.monotonic()
    deadline = t0 + (args.duration if args.duration else 10 ** 9)
    cpu0 = time.process_time()
    await asyncio.gather(*(worker(i, args, host, port, path, stats, next_request, deadline, t0, link_sets)
                           for i in range(args.concurrency)))
    wall = time.monotonic() - t0
    cpu = time.process_time() - cpu0
    lat = sorted(stats.latencies)
    ms = lambda v: None if v is None else round(v * 1000, 2)
    seconds = sorted(stats.per_second.items())
    # Ignore the last partial second when looking for the slowest second.
    full = [s for s in seconds if s[0] < int(wall)] or seconds
    result = {
        "concurrency": args.concurrency,
        "links_per_letter": args.links,
        "pixel": args.pixel,
        "wall_s": round(wall, 2),
        "requests": sum(v for k, v in stats.statuses.items() if isinstance(k, int)),
        "letters_ok": stats.letters_ok,
        "links_minted": stats.links_minted,
        "letters_per_s": round(stats.letters_ok / wall, 1) if wall else None,
        "links_per_s": round(stats.links_minted / wall, 1) if wall else None,
        "p50_ms": ms(percentile(lat, 50)),
        "p90_ms": ms(percentile(lat, 90)),
        "p99_ms": ms(percentile(lat, 99)),
        "p999_ms": ms(percentile(lat, 99.9)),
        "max_ms": ms(lat[-1] if lat else None),
        "statuses": {str(k): v for k, v in sorted(stats.statuses.items(), key=lambda kv: str(kv[0]))},
        "non_201": sum(v for k, v in stats.statuses.items() if k != 201),
        "error_sample": stats.error_sample,
        "conn_errors": stats.conn_errors,
        "conn_error_sample": stats.conn_error_sample,
        "slowest_second": {"second": full[0][0], "letters": min(s[1][0] for s in full)} if full else None,
        "fastest_second_letters": max(s[1][0] for s in full) if full else None,
        "seconds_over_1s_max_latency": sum(1 for s in seconds if s[1][1] > 1.0),
        "generator_cpu_s": round(cpu, 2),
    }
    if full:
        worst = min(full, key=lambda s: s[1][0])
        result["slowest_second"] = {"second": worst[0], "letters": worst[1][0], "max_ms": ms(worst[1][1])}
    if args.timeline:
        result["timeline"] = [[s, c, ms(m)] for s, (c, m) in seconds]
    if args.tokens_out:
        with open(args.tokens_out, "ab") as f:
            for url, tok in stats.click_tokens:
                f.write(tok + b"\t" + url.replace(b"\\/", b"/") + b"\n")
    if args.pixel_tokens_out:
        with open(args.pixel_tokens_out, "ab") as f:
            for tok in stats.pixel_tokens:
                f.write(tok + b"\n")
    print(json.dumps(result))
    return 0 if stats.letters_ok else 1


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", required=True, help="base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("--key", required=True, help="API key")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--duration", type=float, default=0, help="seconds (0: until --count)")
    p.add_argument("--count", type=int, default=0, help="total requests (0: until --duration)")
    p.add_argument("--links", type=int, default=10, help="links per letter")
    p.add_argument("--pixel", action="store_true", help="also mint the open pixel")
    p.add_argument("--distinct-urls", type=int, default=10, help="distinct URLs per mailing")
    p.add_argument("--mailings", type=int, default=100, help="distinct mailings (cycled)")
    p.add_argument("--start", type=int, default=0, help="first recipient number")
    p.add_argument("--timeout", type=float, default=30.0, help="per-response timeout, seconds")
    p.add_argument("--tokens-out", help="append minted click tokens as token<TAB>url lines")
    p.add_argument("--pixel-tokens-out", help="append minted pixel tokens, one per line")
    p.add_argument("--timeline", action="store_true", help="include per-second [second, letters, max_ms]")
    args = p.parse_args()
    if not args.duration and not args.count:
        p.error("give --duration or --count")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
