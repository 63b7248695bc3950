#!/usr/bin/env python3
"""Write SQL that fills the seed-style baseline table `seed` with N rows:
a random 32-hex uuid as the clustered primary key and a small JSON message,
in multi-row INSERTs of `--batch` rows (the shape of seed 003's table).

    python3 loadtests/seed_sql.py --rows 1000000 | mariadb ... dbname
"""

import argparse
import os
import sys

DDL = ("CREATE TABLE seed (UUID varchar(32) NOT NULL, Message json NOT NULL, Inserted DATE NOT NULL, "
       "PRIMARY KEY (UUID)) ENGINE=InnoDB DEFAULT CHARSET=utf8;\n")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--no-ddl", action="store_true")
    args = p.parse_args()
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
