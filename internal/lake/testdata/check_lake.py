#!/usr/bin/env python3
"""Manual check that the predictions table reads as is with pyarrow and DuckDB.

    cd internal/lake
    rm -rf /tmp/pulse-demo && PULSE_LAKE_DEMO_DIR=/tmp/pulse-demo go test -run TestWriteDemoLake .
    python3 testdata/check_lake.py /tmp/pulse-demo/lake

It writes 303 predictions of the Cleveland data for two models ("heart" and "heart v2/β",
percent-encoded in the path) over two UTC dates, and exits non-zero if a reader disagrees.
"""
import sys

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

root = sys.argv[1]
want_rows = 303
want_columns = [
    "prediction_id", "scored_at", "model_version", "alias", "shadow", "label", "probability",
    "threshold", "latency_us", "request_id", "features", "response",
]

# pyarrow: hive partitioning adds model and date after the file columns.
dataset = ds.dataset(root + "/predictions", format="parquet", partitioning="hive")
table = dataset.to_table()
print("pyarrow schema:\n" + str(table.schema))
assert table.num_rows == want_rows, table.num_rows
assert table.column_names == want_columns + ["model", "date"], table.column_names
assert table.schema.field("scored_at").type == pa.timestamp("us", tz="UTC"), table.schema.field("scored_at").type
models = sorted(set(table.column("model").to_pylist()))
assert models == ["heart", "heart v2/β"], models
print("pyarrow: rows", table.num_rows, "models", models, "dates", sorted(set(map(str, table.column("date").to_pylist()))))

# DuckDB
con = duckdb.connect()
q = f"read_parquet('{root}/predictions/*/*/*.parquet', hive_partitioning=true)"
print(con.sql(f"DESCRIBE SELECT * FROM {q}"))
(n,), = con.execute(f"SELECT count(*) FROM {q}").fetchall()
assert n == want_rows, n
for row in con.execute(f"""
        SELECT model, date, count(*) AS n, min(scored_at) AS first, max(scored_at) AS last,
               count(DISTINCT prediction_id) AS ids
        FROM {q} GROUP BY ALL ORDER BY ALL""").fetchall():
    print("duckdb:", row)
(age,), = con.execute(f"SELECT json_extract(features, '$.age')::DOUBLE FROM {q} WHERE prediction_id LIKE '%000000000000'").fetchall()
assert age == 63.0, age
print("duckdb: rows", n, "first age", age)
print("OK")
