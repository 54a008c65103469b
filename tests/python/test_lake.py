"""The data lake as a data scientist reads it: Parquet files written by a real `pulse serve`,
read back as they are by pyarrow and DuckDB (hive partitioning), with exactly the records
the server answered with 200."""

import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "datasets" / "heart-disease" / "processed.cleveland.data"
PATIENT = {"age": 63, "sex": 1, "cp": 1, "trestbps": 145, "chol": 233, "fbs": 1, "restecg": 2,
           "thalach": 150, "exang": 0, "oldpeak": 2.3, "slope": 3, "ca": 0, "thal": 6}


@pytest.fixture(scope="module")
def served():
    binary = os.environ.get("PULSE_BIN")
    assert binary, "PULSE_BIN must name a built pulse binary (the test script sets it)"
    data_dir = tempfile.mkdtemp(prefix="pulse-pytest-")
    proc = subprocess.Popen(
        [binary, "serve", "--addr", "127.0.0.1:0", "--kafka-addr", "127.0.0.1:0", "--data-dir", data_dir, "--example", "heart-disease",
         "--example-data", str(SHARED)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = None
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        m = re.search(r"msg=listening addr=(\S+)", line)
        if m:
            base = "http://" + m.group(1)
            break
    assert base, "pulse serve did not start"
    acked = {}
    rows = list(csv_rows())
    for i, features in enumerate(rows):
        features["patient"] = f"p{i:03d}"
        body = json.dumps(features).encode()
        req = urllib.request.Request(base + "/v1/models/heart-disease/predict", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req) as resp:
            assert resp.status == 200
            out = json.load(resp)
        acked[out["prediction_id"]] = out
    batch = {"instances": [PATIENT, PATIENT, PATIENT]}
    req = urllib.request.Request(base + "/v1/models/heart-disease/predict", data=json.dumps(batch).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        for out in json.load(resp)["predictions"]:
            acked[out["prediction_id"]] = out
    proc.send_signal(signal.SIGTERM)
    proc.stderr.read()
    assert proc.wait(timeout=90) == 0
    yield Path(data_dir) / "lake", acked


def csv_rows():
    with open(SHARED) as f:
        header = [h.strip() for h in f.readline().split(",")]
        for line in f:
            cells = [c.strip() for c in line.strip().split(",")]
            features = {}
            for name, cell in zip(header, cells):
                if name == "num":
                    continue
                features[name] = None if cell == "?" else float(cell)
            yield features


def test_pyarrow_reads_every_acknowledged_record_once(served):
    lake, acked = served
    table = ds.dataset(lake / "predictions", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(acked) == 303 + 3
    ids = table.column("prediction_id").to_pylist()
    assert len(set(ids)) == len(ids)
    assert set(ids) == set(acked)
    assert set(table.column("model").to_pylist()) == {"heart-disease"}
    assert set(table.column("model_version").to_pylist()) == {1}
    by_id = dict(zip(ids, table.to_pylist()))
    for pid, answer in acked.items():
        row = by_id[pid]
        assert row["probability"] == answer["prediction"]["probability"]
        assert row["label"] == answer["prediction"]["label"]
        assert json.loads(row["response"]) == answer
        features = json.loads(row["features"])
        assert {k: v for k, v in answer.items() if k in features} == features
    assert str(table.column("date")[0]) == next(iter(acked.values()))["scored_at"][:10]


def test_duckdb_reads_the_lake_as_is(served):
    lake, acked = served
    con = duckdb.connect()
    n, n_ids, total, patients = con.execute(
        "select count(*), count(distinct prediction_id), sum(probability), "
        "count(distinct json_extract_string(features, '$.patient')) "
        f"from read_parquet('{lake}/predictions/*/*/*.parquet', hive_partitioning=true) "
        "where model = 'heart-disease'").fetchone()
    assert n == n_ids == len(acked)
    assert total == pytest.approx(sum(a["prediction"]["probability"] for a in acked.values()), rel=1e-12)
    assert patients == 303
