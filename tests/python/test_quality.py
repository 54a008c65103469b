"""Pulse's algorithms keep their parity with scikit-learn: bench/quality on 2 x 10 repeated
stratified folds of Cleveland and Hungarian (the full benchmark uses 10 x 10). Both sides are
deterministic for the pinned versions, so the margins checked here do not flicker."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quality_parity_with_scikit_learn(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "quality" / "run.py"), "--repeats", "2", "--out", str(tmp_path)],
                          cwd=ROOT, capture_output=True, text=True)
    print(proc.stdout)
    checks = [line for line in proc.stdout.splitlines() if line.startswith(("PASS ", "FAIL "))]
    assert len(checks) == 6, proc.stdout + proc.stderr
    assert all(line.startswith("PASS ") for line in checks), "\n".join(checks)
    assert proc.returncode == 0, proc.stderr
