#!/usr/bin/env python3
"""Write SQL that fills the seed-style baseline table `seed` with N rows:
a random 32-hex uuid as the clustered primary key and a small JSON message,
in multi-row INSERTs of `--batch` rows (the shape of seed 003's table).

    python3 loadtests/seed_sql.py --rows 1000000 | mariadb ... dbname

With `--sqlite PATH` the same rows go straight into a new SQLite file
instead (for the embedded store's bytes phase): `seed` is then
`UUID TEXT PRIMARY KEY, Message TEXT, Inserted TEXT` WITHOUT ROWID, i.e.
clustered on the random uuid like the InnoDB table, filled in the same
random key order, one transaction per `--batch` rows.
"""

import argparse
import datetime
import os
import sqlite3
import sys

DDL = ("CREATE TABLE seed (UUID varchar(32) NOT NULL, Message json NOT NULL, Inserted DATE NOT NULL, "
       "PRIMARY KEY (UUID)) ENGINE=InnoDB DEFAULT CHARSET=utf8;\n")


def rows(n_rows, batch):
    """Yield lists of (uuid, message) tuples, `batch` at a time; the same data the SQL output holds."""
    n = 0
    while n < n_rows:
        k = min(batch, n_rows - n)
        rnd = os.urandom(16 * k).hex()
        yield [(rnd[32 * i:32 * i + 32],
                '{"url":"https://shop.example/item/%d?utm_source=mail","email":"user%d@example.com","mailing":"m-%d"}'
                % (((n + i) * 7919) % 1000, n + i, (n + i) % 100)) for i in range(k)]
        n += k


def fill_sqlite(path, n_rows, batch):
    if os.path.exists(path):
        os.remove(path)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")  # only the final size matters here
    db.execute("CREATE TABLE seed (UUID TEXT NOT NULL PRIMARY KEY, Message TEXT NOT NULL, Inserted TEXT NOT NULL) WITHOUT ROWID")
    today = datetime.date.today().isoformat()
    for chunk in rows(n_rows, batch):
        db.execute("BEGIN")
        db.executemany("INSERT INTO seed (UUID, Message, Inserted) VALUES (?, ?, ?)", [(u, m, today) for u, m in chunk])
        db.execute("COMMIT")
    db.close()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--no-ddl", action="store_true")
    p.add_argument("--sqlite", metavar="PATH", help="write the rows into a new SQLite file instead of printing SQL")
    args = p.parse_args()
    if args.sqlite:
        fill_sqlite(args.sqlite, args.rows, args.batch)
        return
    out = sys.stdout
    if not args.no_ddl:
        out.write("DROP TABLE IF EXISTS seed;\n" + DDL)
    n = 0
    while n < args.rows:
        k = min(args.batch, args.rows - n)
        rnd = os.urandom(16 * k).hex()
        vals = []
        for i in range(k):
            r = n + i
            vals.append("('%s','{\"url\":\"https://shop.example/item/%d?utm_source=mail\",\"email\":\"user%d@example.com\",\"mailing\":\"m-%d\"}',CURDATE())"
                        % (rnd[32 * i:32 * i + 32], (r * 7919) % 1000, r, r % 100))
        out.write("INSERT INTO seed (UUID, Message, Inserted) VALUES " + ",".join(vals) + ";\n")
        n += k


if __name__ == "__main__":
    main()
