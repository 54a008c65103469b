"""Scores a big heart-disease CSV in DuckDB, as bench/batch compares with `pulse score`: reads
it with read_csv ("?" as NULL), scores it with the view `pulse export --format sql --dialect
duckdb` wrote for the same model version (table "heart"), and writes the scored rows as CSV.

Usage: python3 duckdb_score.py --input BIG.csv --sql VIEW.sql --output OUT.csv [--threads 2]
"""

import argparse

import duckdb


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--input", required=True)
    ap.add_argument("--sql", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute("SET preserve_insertion_order = true")
    con.execute(f"CREATE VIEW heart AS SELECT * FROM read_csv('{args.input}', header = true, nullstr = '?')")
    with open(args.sql) as f:
        con.execute(f.read())
    con.execute(f"COPY (SELECT *, 1 AS model_version FROM heart_scored) TO '{args.output}' (HEADER, DELIMITER ',')")


if __name__ == "__main__":
    main()
