#!/usr/bin/env python3
"""Reference numbers for the gbdt package from scikit-learn's HistGradientBoostingClassifier.

Run from internal/ml/gbdt:  python3 testdata/sklearn_compare.py

It reads the Cleveland heart-disease file (13 raw columns as numeric features, "?" = NaN,
target num > 0), draws a 5-fold stratified split (StratifiedKFold, shuffle, random_state=0)
and writes
  testdata/cleveland_folds.csv  "row,fold" for the 303 data rows (0-based, header excluded)
  testdata/sklearn_results.json per-fold ROC AUC on the held-out fold, their mean, and the
                                median time to fit 100 trees on fold 0's training rows.
The Go test TestQualityVsSklearn trains on the same folds with the same parameters and needs
no Python.
"""
import json
import os
import time

import numpy as np
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "..", "..", "shared", "datasets", "heart-disease",
                    "processed.cleveland.data")

# The same parameters as gbdt.DefaultParams().
PARAMS = dict(
    learning_rate=0.1,
    max_iter=100,
    max_leaf_nodes=31,
    max_depth=None,
    min_samples_leaf=20,
    l2_regularization=0.0,
    max_bins=255,
    early_stopping=False,
)


def load():
    rows = []
    with open(DATA) as f:
        header = [h.strip() for h in f.readline().split(",")]
        assert header[-1] == "num", header
        for line in f:
            line = line.strip()
            if line:
                rows.append([float("nan") if v.strip() == "?" else float(v) for v in line.split(",")])
    a = np.array(rows)
    return a[:, :13], (a[:, 13] > 0).astype(int)


def main():
    X, y = load()
    skf = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    fold = np.empty(len(y), dtype=int)
    for k, (_, test) in enumerate(skf.split(X, y)):
        fold[test] = k
    with open(os.path.join(HERE, "cleveland_folds.csv"), "w") as f:
        f.write("row,fold\n")
        for i, k in enumerate(fold):
            f.write(f"{i},{k}\n")

    aucs = []
    for k in range(5):
        tr, te = fold != k, fold == k
        clf = HistGradientBoostingClassifier(**PARAMS, random_state=0).fit(X[tr], y[tr])
        aucs.append(float(roc_auc_score(y[te], clf.predict_proba(X[te])[:, 1])))

    tr = fold != 0
    times = []
    for _ in range(20):
        t0 = time.perf_counter()
        HistGradientBoostingClassifier(**PARAMS, random_state=0).fit(X[tr], y[tr])
        times.append(time.perf_counter() - t0)

    out = {
        "sklearn_version": sklearn.__version__,
        "params": PARAMS,
        "folds": "StratifiedKFold(n_splits=5, shuffle=True, random_state=0)",
        "fold_auc": aucs,
        "mean_auc": float(np.mean(aucs)),
        "fit_rows": int(tr.sum()),
        "fit_seconds_median": float(np.median(times)),
        "threads": os.environ.get("OMP_NUM_THREADS", "default"),
    }
    with open(os.path.join(HERE, "sklearn_results.json"), "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
