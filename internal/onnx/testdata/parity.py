"""Runs Pulse's ONNX exports in ONNX Runtime and compares each probability with Predict's.

Usage: python3 parity.py DIR. For every DIR/NAME.onnx there is DIR/NAME.csv: a header of the
model's inputs then "probability", one row per case: numbers as Go writes them ("NaN" for a
missing value), categories as text ("" for a missing value), and Predict's probability. The
script checks each model with onnx.checker (full check), scores the rows with the CPU provider
and prints one JSON object: per NAME the number of rows, the largest |ONNX - Predict| and how
many labels disagree with probability >= threshold. It exits 3 when onnx or onnxruntime is
missing, so that the Go test can say what to install.
"""

import csv
import json
import sys
from pathlib import Path

try:
    import numpy as np
    import onnx
    import onnxruntime as ort
except ImportError as e:  # the Go test turns this into a clear failure
    print(f"missing Python package: {e}; install tests/python/requirements.txt", file=sys.stderr)
    sys.exit(3)


def score(model_path: Path, csv_path: Path) -> dict:
    model = onnx.load(str(model_path))
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    threshold = float(meta["pulse.threshold"])
    kinds = {i["name"]: i["kind"] for i in json.loads(meta["pulse.inputs"])}

    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    header, rows = rows[0], rows[1:]
    names = header[:-1]
    feeds = {}
    for j, name in enumerate(names):
        col = [r[j] for r in rows]
        if kinds[name] == "numeric":
            feeds[name] = np.array([[float(v)] for v in col], dtype=np.float64)
        else:
            feeds[name] = np.array([[v] for v in col], dtype=object)
    want = np.array([float(r[-1]) for r in rows], dtype=np.float64)

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got_names = [o.name for o in sess.get_outputs()]
    assert got_names == ["probability", "label"], got_names
    prob, label = sess.run(None, feeds)
    assert prob.dtype == np.float64 and prob.shape == (len(rows), 1), (prob.dtype, prob.shape)
    assert label.dtype == np.int64 and label.shape == (len(rows), 1), (label.dtype, label.shape)
    diff = np.abs(prob[:, 0] - want)
    return {
        "rows": len(rows),
        "max_abs_diff": float(diff.max()) if len(rows) else 0.0,
        "worst_row": int(diff.argmax()) + 1 if len(rows) else 0,
        "label_mismatches": int(((prob[:, 0] >= threshold).astype(np.int64) != label[:, 0]).sum()),
        "onnxruntime": ort.__version__,
    }


def main() -> None:
    out = {}
    for model_path in sorted(Path(sys.argv[1]).glob("*.onnx")):
        out[model_path.stem] = score(model_path, model_path.with_suffix(".csv"))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
