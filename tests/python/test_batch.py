"""`pulse score` output as a data scientist reads it: the Parquet file read back by pyarrow and
DuckDB (column types, nulls where Cleveland has "?", the same probabilities as the CSV output),
and the CSV output read by DuckDB."""

import csv
import json
import os
import subprocess
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "datasets" / "heart-disease" / "processed.cleveland.data"
ARTIFACT = ROOT / "internal" / "ml" / "testdata" / "artifact_v1_logreg.json"
NUMERIC = ["age", "trestbps", "chol", "thalach", "oldpeak", "ca"]
STRINGS = ["sex", "cp", "fbs", "restecg", "exang", "slope", "thal", "num"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    binary = os.environ.get("PULSE_BIN")
    assert binary, "PULSE_BIN must name a built pulse binary (the test script sets it)"
    out = tmp_path_factory.mktemp("score")
    for name in ("scored.csv", "scored.parquet"):
        proc = subprocess.run([binary, "score", "--artifact", str(ARTIFACT), "--version", "5",
                               "--input", str(DATA), "--output", str(out / name)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        assert summary["rows"] == 303 and summary["scored"] == 303 and summary["bad"] == 0
    with open(out / "scored.csv", newline="") as f:
        rows = list(csv.reader(f, skipinitialspace=True))
    return out, rows


def test_parquet_with_pyarrow(scored):
    out, rows = scored
    table = pq.read_table(out / "scored.parquet")
    assert table.num_rows == 303
    assert table.column_names == [c.strip() for c in rows[0]]
    for name in NUMERIC:
        assert table.schema.field(name).type == pa.float64(), name
    for name in STRINGS:
        assert table.schema.field(name).type == pa.string(), name
    assert table.schema.field("probability").type == pa.float64()
    assert table.schema.field("label").type == pa.int32()
    assert table.schema.field("model_version").type == pa.int64()
    assert table.column("ca").null_count == 4
    assert table.column("thal").null_count == 2
    got = table.column("probability").to_pylist()
    want = [float(r[14]) for r in rows[1:]]
    assert got == want  # the CSV holds the shortest text of the same float64
    labels = table.column("label").to_pylist()
    assert labels == [int(p >= 0.5) for p in got]
    assert set(table.column("model_version").to_pylist()) == {5}
    assert table.column("cp").to_pylist()[:2] == ["1.0", "4.0"]


def test_parquet_and_csv_with_duckdb(scored):
    out, _ = scored
    con = duckdb.connect()
    pq_rows = con.execute(f"""SELECT count(*), count(ca), sum(label), min(probability), max(probability)
                              FROM '{out / "scored.parquet"}'""").fetchone()
    assert pq_rows[0] == 303 and pq_rows[1] == 299
    assert 0 < pq_rows[3] < pq_rows[4] < 1
    csv_rows = con.execute(f"""SELECT count(*), sum(label), min(probability), max(probability)
                               FROM read_csv('{out / "scored.csv"}', header = true)""").fetchone()
    assert csv_rows == (303, pq_rows[2], pq_rows[3], pq_rows[4])
    diff = con.execute(f"""SELECT count(*) FROM
        (SELECT row_number() OVER () AS i, probability FROM '{out / "scored.parquet"}') p
        JOIN (SELECT row_number() OVER () AS i, probability FROM read_csv('{out / "scored.csv"}', header = true)) c
        USING (i) WHERE p.probability <> c.probability""").fetchone()[0]
    assert diff == 0
