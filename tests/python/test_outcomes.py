"""The lake's outcomes table as a data scientist reads it: a real `pulse serve` scores the
Cleveland rows, gets their ground truth by POST /v1/feedback, and its Parquet files are read
back as they are by pyarrow and DuckDB (hive partitioning), one row per labelled prediction
with the prediction's probability and label beside the truth."""

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
import pyarrow as pa
import pyarrow.dataset as ds
import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "datasets" / "heart-disease" / "processed.cleveland.data"
OBSERVED = "2026-01-02T03:04:05.678901Z"


def post(base, path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as resp:
        assert resp.status == 200
        return json.load(resp)


def cleveland():
    with open(SHARED) as f:
        header = [h.strip() for h in f.readline().split(",")]
        for line in f:
            cells = [c.strip() for c in line.strip().split(",")]
            features = {n: (None if c == "?" else float(c)) for n, c in zip(header, cells) if n != "num"}
            yield features, int(float(cells[-1]) > 0)


@pytest.fixture(scope="module")
def labelled():
    binary = os.environ.get("PULSE_BIN")
    assert binary, "PULSE_BIN must name a built pulse binary (the test script sets it)"
    data_dir = tempfile.mkdtemp(prefix="pulse-pytest-outcomes-")
    proc = subprocess.Popen(
        [binary, "serve", "--addr", "127.0.0.1:0", "--kafka-brokers", "off", "--data-dir", data_dir,
         "--example", "heart-disease", "--example-data", str(SHARED)],
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
    rows = list(cleveland())
    scored = post(base, "/v1/models/heart-disease/predict", {"instances": [f for f, _ in rows]})["predictions"]
    truth = {}
    items = []
    for answer, (_, label) in zip(scored, rows):
        truth[answer["prediction_id"]] = (answer, label)
        items.append({"prediction_id": answer["prediction_id"], "label": label, "observed_at": OBSERVED})
    summary = post(base, "/v1/feedback", {"feedback": items})
    assert summary["joined"] == len(rows) == 303, summary
    proc.send_signal(signal.SIGTERM)
    proc.stderr.read()
    assert proc.wait(timeout=90) == 0
    yield Path(data_dir) / "lake", truth


def test_pyarrow_reads_one_outcome_per_label(labelled):
    lake, truth = labelled
    table = ds.dataset(lake / "outcomes", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == len(truth)
    assert table.column_names == [
        "prediction_id", "model_version", "alias", "shadow", "probability", "predicted_label", "threshold",
        "label", "scored_at", "observed_at", "received_at", "source", "feedback_id", "model", "date"]
    assert table.schema.field("observed_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("shadow").type == pa.bool_()
    for row in table.to_pylist():
        answer, label = truth[row["prediction_id"]]
        assert row["label"] == label
        assert row["probability"] == answer["prediction"]["probability"]
        assert row["predicted_label"] == answer["prediction"]["label"]
        assert row["model_version"] == answer["model"]["version"] == 1
        assert row["model"] == "heart-disease" and row["alias"] == "champion" and not row["shadow"]
        assert row["source"] == "api" and row["feedback_id"]
        assert row["observed_at"].isoformat() == "2026-01-02T03:04:05.678901+00:00"
        assert str(row["date"]) == answer["scored_at"][:10]


def test_duckdb_recomputes_accuracy(labelled):
    lake, truth = labelled
    con = duckdb.connect()
    n, ids, accuracy, brier = con.execute(
        "select count(*), count(distinct prediction_id), avg((predicted_label = label)::int), "
        "avg((probability - label) ^ 2) "
        f"from read_parquet('{lake}/outcomes/*/*/*.parquet', hive_partitioning=true) "
        "where model = 'heart-disease' and not shadow").fetchone()
    assert n == ids == len(truth)
    want = sum(a["prediction"]["label"] == label for a, label in truth.values()) / len(truth)
    assert accuracy == pytest.approx(want, abs=1e-12)
    assert 0.75 < accuracy < 0.95  # the champion on the data it was trained and held out on
    want_brier = sum((a["prediction"]["probability"] - label) ** 2 for a, label in truth.values()) / len(truth)
    assert brier == pytest.approx(want_brier, rel=1e-12)
