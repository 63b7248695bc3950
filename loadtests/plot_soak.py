#!/usr/bin/env python3
"""Chart and summary of loadtests/soak.sh samples.

    plot_soak.py --out soak.png samples-mysql.csv samples-sqlite.csv

One panel per resource (RSS, open FDs, MariaDB Threads_connected, spool
bytes, event queue depth), one line per store (named by the file's
`samples-<store>.csv`). Prints, per store and resource, the first, last and
peak values and the median of the first and last thirds of the run (a flat
resource has about equal thirds), as a markdown table.
"""

import argparse
import csv
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

PANELS = [
    ("rss_kib", "RSS (MiB)", 1 / 1024),
    ("open_fds", "open file descriptors", 1),
    ("db_threads_connected", "MariaDB Threads_connected", 1),
    ("spool_bytes", "spool bytes", 1),
    ("queue_depth", "event queue depth", 1),
]


def load(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    store = os.path.basename(path).removeprefix("samples-").removesuffix(".csv")
    return store, rows


def series(rows, col, scale):
    xs, ys = [], []
    for r in rows:
        if r.get(col, "") not in ("", None):
            xs.append(float(r["t_s"]) / 60)
            ys.append(float(r[col]) * scale)
    return xs, ys


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("csvs", nargs="+")
    args = p.parse_args()
    data = [load(c) for c in args.csvs]

    fig, axes = plt.subplots(len(PANELS), 1, figsize=(9, 2.2 * len(PANELS)), sharex=True)
    print("| store | resource | first | last | peak | median first third | median last third |")
    print("|---|---|---|---|---|---|---|")
    for ax, (col, label, scale) in zip(axes, PANELS):
        for store, rows in data:
            xs, ys = series(rows, col, scale)
            if not ys:
                continue
            ax.plot(xs, ys, label=store, marker=".", markersize=3, linewidth=1)
            third = max(1, len(ys) // 3)
            print(
                f"| {store} | {label} | {ys[0]:.1f} | {ys[-1]:.1f} | {max(ys):.1f} "
                f"| {statistics.median(ys[:third]):.1f} | {statistics.median(ys[-third:]):.1f} |"
            )
        ax.set_ylabel(label, fontsize=8)
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left")
    axes[-1].set_xlabel("minutes of mixed load (mint, redirects at a fixed rate, scanner bursts, export)")
    fig.suptitle("linktrack soak: resources sampled every 10 s", fontsize=10)
    fig.tight_layout()
    fig.savefig(args.out, dpi=90)


if __name__ == "__main__":
    main()
