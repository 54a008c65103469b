"""The SQL export scores in DuckDB as Pulse does: the Go side (internal/sqlexport's
TestDuckDBFixtures) writes the DuckDB view of a logreg, a gbdt and an ftrl model trained on Cleveland and
Predict's probability of every row; DuckDB runs the view over the original CSV (categories read
as numbers, "?" as NULL) and each probability must agree within 1e-9."""

import os
import subprocess
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "datasets" / "heart-disease" / "processed.cleveland.data"
COLUMNS = ["age", "sex", "cp", "trestbps", "chol", "fbs", "restecg", "thalach", "exang",
           "oldpeak", "slope", "ca", "thal", "num"]


@pytest.fixture(scope="module")
def fixtures(tmp_path_factory):
    out = tmp_path_factory.mktemp("sqlexport")
    env = dict(os.environ, PULSE_SQL_EXPORT_OUT=str(out))
    proc = subprocess.run(["go", "test", "-count=1", "-run", "^TestDuckDBFixtures$", "./internal/sqlexport/"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.parametrize("algorithm", ["logreg", "gbdt", "ftrl"])
def test_duckdb_view_matches_predict(fixtures, algorithm):
    want = [float(line) for line in (fixtures / f"{algorithm}.probabilities").read_text().split()]
    assert len(want) == 303
    con = duckdb.connect()
    names = "[" + ", ".join(f"'{c}'" for c in COLUMNS) + "]"
    con.execute(f"""CREATE TABLE heart AS
        SELECT row_number() OVER () AS row_id, *
        FROM read_csv('{DATA}', header = true, names = {names}, nullstr = '?', all_varchar = false)""")
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'heart'").fetchall())
    assert types["cp"] == "DOUBLE" and types["thal"] == "DOUBLE", types  # categories as numbers
    missing = con.execute("SELECT count(*) FROM heart WHERE ca IS NULL OR thal IS NULL").fetchone()[0]
    assert missing == 6
    con.execute((fixtures / f"{algorithm}.duckdb.sql").read_text())
    got = [r[0] for r in con.execute(f"SELECT probability FROM heart_{algorithm} ORDER BY row_id").fetchall()]
    assert len(got) == len(want)
    bad = [(i + 1, g, w) for i, (g, w) in enumerate(zip(got, want)) if not abs(g - w) <= 1e-9]
    assert not bad, f"{len(bad)} rows differ, first: {bad[:5]}"
    labels = con.execute(f"SELECT count(*) FROM heart_{algorithm} WHERE label <> (probability >= 0.5)::INTEGER").fetchone()[0]
    assert labels == 0
