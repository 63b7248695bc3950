#!/usr/bin/env python3
"""Charts and a summary of a growth run (loadtests/growth.sh).

    python3 loadtests/plot_growth.py RUN/growth.jsonl OUTDIR

Writes OUTDIR/growth-insert-rate.png, growth-cold-p99.png,
growth-partitions.png and growth-events.png (matplotlib), and prints the
figures the issue's targets name as markdown tables on stdout. Ratios come
from the A/B rounds (records with "ab_round"), where the full and the small
database were measured in turn under the same load.
"""
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def layouts(recs):
    """Day counts of the full layouts (databases growth_<days>), ascending."""
    return sorted({int(r["db"].split("_")[1]) for r in recs if r.get("db", "").count("_") == 1})


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt(x, nd=1):
    return f"{x:,.{nd}f}"


def millions(n):
    return f"{n / 1e6:.1f} M"


def chart_insert(recs, out):
    fig, ax = plt.subplots(figsize=(8, 5))
    for db, style in zip((f"growth_{d}" for d in layouts(recs)), ("o-", "s-", "d-")):
        pts = [(r["links"], r["rate"]) for r in recs if r["kind"] == "fill" and r["db"] == db]
        if pts:
            pool = next(r["pool_mib"] for r in recs if r["kind"] == "fill" and r["db"] == db)
            ax.plot([p[0] / 1e6 for p in pts], [p[1] / 1e3 for p in pts], style, ms=2, lw=0.8, alpha=0.6,
                    label=f"linktrack fill, day by day, {db.split('_')[1]} day partitions ({pool} MiB pool)")
            win = [(r["links"], r["links_per_s"]) for r in recs if r["kind"] == "mint" and r["db"] == db
                   and r["shape"] == "batch1000" and r["pool_mib"] == pool and "ab_round" not in r]
            if win:
                ax.plot([p[0] / 1e6 for p in win], [p[1] / 1e3 for p in win], style[0], ms=9, mfc="none", mew=2,
                        color=ax.lines[-1].get_color(), label=f"linktrack mint into today at each size, {db.split('_')[1]} days")
    pts = [(r["rows"], r["rate"]) for r in recs if r["kind"] == "seed_fill"]
    if pts:
        ax.plot([p[0] / 1e6 for p in pts], [p[1] / 1e3 for p in pts], "^-", ms=3, color="tab:red",
                label=f"seed design: random VARCHAR(32) PK + JSON ({recs_pool(recs, 'seed_fill')} MiB pool)")
    finish(fig, ax, out / "growth-insert-rate.png", "Insert rate as the tables grow", "rows in the table(s), millions (log)",
           "insert rate, thousand rows/s (1000-row batches, 8 clients)", legend=8)


def finish(fig, ax, path, title, xlabel, ylabel, legend):
    """Log x axis, labels, grid and legend; save the chart and close it."""
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=legend)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def recs_pool(recs, kind):
    return next((r["pool_mib"] for r in recs if r["kind"] == kind), "?")


def chart_cold(recs, out):
    fig, ax = plt.subplots(figsize=(8, 5))
    for db, marker in zip((f"growth_{d}" for d in layouts(recs)), "osd"):
        for pool, ls in ((128, "-"), (1024, "--")):
            pts = [(r["links"], r["p99_ms"]) for r in recs if r["kind"] == "resolve" and r["db"] == db
                   and r["pool_mib"] == pool and r["targets"] == "uniform" and "ab_round" not in r]
            if pts:
                ax.plot([p[0] / 1e6 for p in pts], [p[1] for p in pts], marker + ls, ms=4,
                        label=f"linktrack resolve, {db.split('_')[1]} partitions, {pool} MiB")
    for pool, ls in ((128, "-"), (1024, "--")):
        pts = [(r["rows"], r["p99_ms"]) for r in recs if r["kind"] == "seed_lookup" and r["pool_mib"] == pool]
        if pts:
            ax.plot([p[0] / 1e6 for p in pts], [p[1] for p in pts], "^" + ls, ms=4, color="tab:red",
                    label=f"seed design point lookup, {pool} MiB")
    finish(fig, ax, out / "growth-cold-p99.png", "Cold lookup p99 as the tables grow", "rows, millions (log)",
           "p99 latency, ms (16 concurrent, uniform over all rows)", legend=7)


def ab(recs):
    """A/B records grouped by (kind, db, pool, shape/targets) -> list of records."""
    g = defaultdict(list)
    for r in recs:
        if "ab_round" in r:
            g[(r["kind"], r["db"], r["pool_mib"], r.get("shape") or r.get("targets"))].append(r)
    return g


def chart_partitions(recs, out):
    g = ab(recs)
    pools = sorted({k[2] for k in g})
    fig, ax = plt.subplots(figsize=(8, 5))
    labels, values, colors = [], [], []
    for pool in pools:
        for targets in ("uniform", "last3"):
            for db, color in zip((f"growth_{d}" for d in layouts(recs)), ("tab:blue", "tab:orange", "tab:green")):
                rs = g.get(("resolve", db, pool, targets), [])
                if rs:
                    labels.append(f"{db.split('_')[1]}p\n{targets}\n{pool} MiB")
                    values.append(min(r["p99_ms"] for r in rs))
                    colors.append(color)
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_ylabel("cold resolve p99, ms (better of 2 A/B rounds)")
    lay = layouts(recs)
    n = next((r["links"] for r in recs if r["kind"] == "resolve" and r["db"] == f"growth_{lay[-1]}" and "ab_round" in r), 0)
    ax.set_title(f"Cold resolve p99 at {millions(n)} links: {' vs '.join(map(str, lay))} day partitions")
    ax.grid(True, axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out / "growth-partitions.png", dpi=110)
    plt.close(fig)


def chart_events(recs, out):
    pts = [(r["events"], r["rate"]) for r in recs if r["kind"] == "event_fill"]
    if not pts:
        return
    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot([p[0] / 1e6 for p in pts], [p[1] / 1e3 for p in pts], "o-", ms=3,
            label=f"events through Store::write_events, 5000-row batches, one writer ({recs_pool(recs, 'event_fill')} MiB pool)")
    ax.set_xlabel("event rows, millions")
    ax.set_ylabel("insert rate, thousand rows/s")
    ax.set_ylim(bottom=0)
    ax.set_title("Event insert rate as the events table grows (30 day partitions)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "growth-events.png", dpi=110)
    plt.close(fig)


def summary(recs):
    g = ab(recs)
    print("### Growth ratios from the A/B rounds (full database ÷ fresh small one, same windows)\n")
    print("| layout | pool | measure | full: links | small: links | round 1 | round 2 | ratio r1 | ratio r2 | ratio of the means |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    lay = layouts(recs)
    for days in lay:
        for pool in sorted({k[2] for k in g}):
            for kind, sub, field in (("mint", "batch1000", "links_per_s"), ("mint", "letter10", "links_per_s"),
                                     ("resolve", "uniform", "p99_ms"), ("resolve", "last3", "p99_ms")):
                big = g.get((kind, f"growth_{days}", pool, sub), [])
                small = g.get((kind, f"growth_{days}_small", pool, sub), [])
                if len(big) < 2 or len(small) < 2:
                    continue
                ratios = [b[field] / s[field] for b, s in zip(big, small)]
                unit = "links/s" if field == "links_per_s" else "p99 ms"
                print(f"| {days} days | {pool} MiB | {kind} {sub} ({unit}) | {millions(big[-1]['links'])} | {millions(small[-1]['links'])} "
                      f"| {fmt(big[0][field])} / {fmt(small[0][field])} | {fmt(big[1][field])} / {fmt(small[1][field])} "
                      f"| {ratios[0]:.3f} | {ratios[1]:.3f} | **{sum(b[field] for b in big) / sum(x[field] for x in small):.3f}** |")
    lo, hi = lay[0], lay[-1]
    print(f"\n### Cold resolve p99, {hi} ÷ {lo} partitions (full databases, A/B rounds)\n")
    print(f"| pool | targets | {lo} partitions p99 ms (r1, r2) | {hi} partitions p99 ms (r1, r2) | ratio, better of two each |")
    print("|---|---|---|---|---|")
    for pool in sorted({k[2] for k in g}):
        for targets in ("uniform", "last3"):
            a = g.get(("resolve", f"growth_{lo}", pool, targets), [])
            b = g.get(("resolve", f"growth_{hi}", pool, targets), [])
            if a and b:
                print(f"| {pool} MiB | {targets} | {', '.join(fmt(r['p99_ms'], 2) for r in a)} | {', '.join(fmt(r['p99_ms'], 2) for r in b)} "
                      f"| {min(r['p99_ms'] for r in b) / min(r['p99_ms'] for r in a):.3f} |")
    print("\n### Every checkpoint (not A/B: measured as the fill reached each size)\n")
    print("| db | links | pool | batch links/s | letter links/s | resolve uniform p50 / p99 ms | last-3-days p50 / p99 ms | pool reads / resolve |")
    print("|---|---|---|---|---|---|---|---|")
    rows = {}
    for r in recs:
        if "ab_round" in r or r["kind"] not in ("mint", "resolve"):
            continue
        k = (r["db"], r["pool_mib"])
        rows.setdefault(k, [])
        if r["kind"] == "mint" and r["shape"] == "batch1000":
            rows[k].append({"links": r["links"]})
        rows[k][-1][r.get("shape") or r["targets"]] = r
    for (db, pool), pts in rows.items():
        for p in pts:
            u, l3 = p.get("uniform"), p.get("last3")
            print(f"| {db} | {millions(p['links'])} | {pool} MiB | {fmt(p['batch1000']['links_per_s'], 0)} | {fmt(p['letter10']['links_per_s'], 0)} "
                  f"| {fmt(u['p50_ms'], 2)} / {fmt(u['p99_ms'], 2)} | {fmt(l3['p50_ms'], 2)} / {fmt(l3['p99_ms'], 2)} "
                  f"| {u['per_resolve']['innodb_buffer_pool_reads']:.3f} / {l3['per_resolve']['innodb_buffer_pool_reads']:.3f} |")
    print("\n### Bytes per link (information_schema after ANALYZE TABLE; 1000-link letters)\n")
    print("| db | links | links_v2 | letters | urls | total |")
    print("|---|---|---|---|---|---|")
    for r in recs:
        if r["kind"] == "bytes":
            print(f"| {r['db']} | {millions(r['links'])} | {r.get('links_v2_per_link')} | {r.get('letters_per_link')} | {r.get('urls_per_link')} | **{r['per_link']}** |")
    ev = [r for r in recs if r["kind"] in ("event_window", "export", "event_stop", "event_total")]
    if ev:
        print("\n### Events\n")
        print("| at events | pool | write window rows/s | export p50 / p99 ms, oldest cursor | newest cursor | oldest ÷ newest (p99) |")
        print("|---|---|---|---|---|---|")
        pts = defaultdict(dict)
        for r in ev:
            if r["kind"] == "event_window":
                pts[(r["events"], r["pool_mib"])]["w"] = r
            elif r["kind"] == "export":
                pts[(r["events"], r["pool_mib"])][r["cursor"]] = r
        for (n, pool), p in sorted(pts.items()):
            o, w = p.get("oldest"), p.get("newest")
            ratio = f"{o['p99_ms'] / w['p99_ms']:.3f}" if o and w else "-"
            print(f"| {millions(n)} | {pool} MiB | {fmt(p['w']['rate'], 0)} | {fmt(o['p50_ms'], 1)} / {fmt(o['p99_ms'], 1)} "
                  f"| {fmt(w['p50_ms'], 1)} / {fmt(w['p99_ms'], 1)} | {ratio} |")
        fills = [r for r in recs if r["kind"] == "event_fill"]
        if fills:
            first = statistics.mean(r["rate"] for r in fills[:3])
            last = statistics.mean(r["rate"] for r in fills[-3:])
            print(f"\nEvent fill: mean of the first three steps {fmt(first, 0)} rows/s (to {millions(fills[2]['events'] if len(fills) > 2 else fills[-1]['events'])}), "
                  f"of the last three {fmt(last, 0)} rows/s (to {millions(fills[-1]['events'])}): ratio {last / first:.3f}.")
        for r in recs:
            if r["kind"] in ("event_stop", "event_total"):
                print(f"\n{r}")
    m = [r for r in recs if r["kind"] == "maintain"]
    if m:
        print("\n### Maintenance pass under mint load (create tomorrow, drop the oldest day)\n")
        print("| db | links | pass ms | created | dropped | mint links/s meanwhile | mint p99 / max ms |")
        print("|---|---|---|---|---|---|---|")
        for r in m:
            print(f"| {r['db']} | {millions(r['links'])} | {fmt(r['ms'], 0)} | {r['created']} | {r['dropped']} | {fmt(r['mint_links_per_s_meanwhile'], 0)} "
                  f"| {fmt(r['mint_p99_ms'], 0)} / {fmt(r['mint_max_ms'], 0)} |")
    seed = [r for r in recs if r["kind"] == "seed_fill"]
    if seed:
        last = seed[-1]
        first_db = f"growth_{layouts(recs)[0]}"
        lt = [r for r in recs if r["kind"] == "fill" and r["db"] == first_db]
        near = min(lt, key=lambda r: abs(r["links"] - last["rows"])) if lt else None
        print("\n### The seed's design beside linktrack (fill rates, same client and batch size)\n")
        print("| seed rows | seed rows/s | pool reads / row |")
        print("|---|---|---|")
        for r in seed:
            print(f"| {millions(r['rows'])} | {fmt(r['rate'], 0)} | {r['per_row']['innodb_buffer_pool_reads']:.3f} |")
        if near:
            print(f"\nAt the seed's largest size ({millions(last['rows'])}), its last fill step ran at {fmt(last['rate'], 0)} rows/s; "
                  f"linktrack's fill step nearest that size ({millions(near['links'])} links, {first_db}) at {fmt(near['rate'], 0)} links/s: "
                  f"**{near['rate'] / last['rate']:.2f}×**.")
        for r in recs:
            if r["kind"] in ("seed_stop", "seed_lookup"):
                print(f"\n{r}" if r["kind"] == "seed_stop" else
                      f"\nseed lookup at {millions(r['rows'])}, {r['pool_mib']} MiB: p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms, "
                      f"{r['per_lookup']['innodb_buffer_pool_reads']:.3f} pool reads / lookup")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    recs = load(sys.argv[1])
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    chart_insert(recs, out)
    chart_cold(recs, out)
    chart_partitions(recs, out)
    chart_events(recs, out)
    summary(recs)


if __name__ == "__main__":
    main()
