#!/usr/bin/env python3
"""Writes the scikit-learn reference values that internal/ml's golden tests compare with.

Run from internal/ml (see testdata/README.md):

    python3 testdata/make_golden.py

It reads the Cleveland heart-disease file, preprocesses it exactly as Pulse does for logreg
(median-impute then standardise numeric columns with the population sd, mode-impute binary and
categorical columns, binary "1" -> 1, categorical one-hot over the sorted categories), fits
scikit-learn's LogisticRegression for each case on every row with target num > 0, and writes

  testdata/golden_logreg.json   the intercept and coefficients of each case, by Pulse's
                                feature name ("age", "sex=1", "cp=4", ...)
  testdata/golden_metrics.json  labels, the probabilities of the first case, and scikit-learn's
                                metrics and calibration curve of those probabilities

Floats are written with repr, which round-trips exactly.
"""

import json
import math
import os
import sys

import numpy as np
import sklearn
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (accuracy_score, brier_score_loss, f1_score, log_loss,
                             precision_score, recall_score, roc_auc_score)

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "..", "..", "shared", "datasets", "heart-disease",
                    "processed.cleveland.data")

NUMERIC = ["age", "trestbps", "chol", "thalach", "oldpeak", "ca"]
BINARY = ["sex", "fbs", "exang"]
CATEGORICAL = ["cp", "restecg", "slope", "thal"]


def canonical(cell):
    """pulse.CanonicalCategory: numbers in their shortest form ("1.0" -> "1")."""
    f = float(cell)
    return str(int(f)) if f == int(f) else repr(f)


def read():
    with open(DATA) as f:
        header = [h.strip() for h in f.readline().split(",")]
        rows = [[c.strip() for c in line.split(",")] for line in f if line.strip()]
    return header, rows


def preprocess(header, rows):
    """Returns the design matrix, the labels and Pulse's feature names, columns in file order."""
    cols = {name: [r[j] for r in rows] for j, name in enumerate(header)}
    y = np.array([1.0 if float(v) > 0 else 0.0 for v in cols["num"]])
    blocks, names = [], []
    for name in header:
        if name == "num":
            continue
        cells = cols[name]
        missing = [c == "?" for c in cells]
        if name in NUMERIC:
            present = np.array([float(c) for c, m in zip(cells, missing) if not m])
            median = float(np.median(present))  # mean of the middle two for an even count
            v = np.array([median if m else float(c) for c, m in zip(cells, missing)])
            mean = v.mean()
            sd = v.std()  # population sd (ddof 0)
            if not sd > 0:
                sd = 1.0
            blocks.append(((v - mean) / sd)[:, None])
            names.append(name)
            continue
        cats = [canonical(c) if not m else None for c, m in zip(cells, missing)]
        categories = sorted(set(c for c in cats if c is not None))  # byte order, as Go sorts
        counts = {c: cats.count(c) for c in categories}
        mode = max(categories, key=lambda c: (counts[c], -categories.index(c)))
        cats = [mode if c is None else c for c in cats]
        if name in BINARY:
            blocks.append(np.array([[1.0 if c == categories[1] else 0.0] for c in cats]))
            names.append(name + "=" + categories[1])
        elif name in CATEGORICAL:
            blocks.append(np.array([[1.0 if c == k else 0.0 for k in categories] for c in cats]))
            names.extend(name + "=" + k for k in categories)
        else:
            sys.exit("unexpected column " + name)
    return np.hstack(blocks), y, names


def penalty_args(penalty, l1_ratio):
    """scikit-learn 1.8 deprecated `penalty` in favour of l1_ratio alone."""
    major, minor = (int(p) for p in sklearn.__version__.split(".")[:2])
    ratio = {"l2": 0.0, "l1": 1.0}.get(penalty, l1_ratio)
    if (major, minor) >= (1, 8):
        return {"l1_ratio": ratio}
    args = {"penalty": penalty}
    if penalty == "elasticnet":
        args["l1_ratio"] = ratio
    return args


# name, Pulse params, scikit-learn solver arguments
CASES = [
    ("l2_C1", {"C": 1.0}, {"solver": "newton-cholesky", "tol": 1e-14, "max_iter": 1000}),
    ("l2_C0.1", {"C": 0.1}, {"solver": "newton-cholesky", "tol": 1e-14, "max_iter": 1000}),
    ("l2_C1_balanced", {"C": 1.0, "class_weight": "balanced"},
     {"solver": "newton-cholesky", "tol": 1e-14, "max_iter": 1000}),
    ("l1_C1", {"C": 1.0, "penalty": "l1"}, {"solver": "saga", "tol": 1e-13, "max_iter": 1000000}),
    ("l1_C0.1", {"C": 0.1, "penalty": "l1"}, {"solver": "saga", "tol": 1e-13, "max_iter": 1000000}),
    ("elasticnet_C1_r0.5", {"C": 1.0, "penalty": "elasticnet", "l1_ratio": 0.5},
     {"solver": "saga", "tol": 1e-13, "max_iter": 1000000}),
    ("elasticnet_C0.1_r0.5_balanced",
     {"C": 0.1, "penalty": "elasticnet", "l1_ratio": 0.5, "class_weight": "balanced"},
     {"solver": "saga", "tol": 1e-13, "max_iter": 1000000}),
]


def kkt_violation(x, y, sw, c, l1_ratio, coef, intercept):
    """The norm of the minimum-norm subgradient of the objective: 0 at the optimum."""
    p = 1 / (1 + np.exp(-(x @ coef + intercept)))
    g = c * x.T @ (sw * (p - y)) + (1 - l1_ratio) * coef
    lam = l1_ratio
    sub = np.where(coef != 0, g + lam * np.sign(coef), np.sign(g) * np.maximum(np.abs(g) - lam, 0))
    return math.sqrt(float(sub @ sub) + float(c * np.sum(sw * (p - y))) ** 2)


def main():
    header, rows = read()
    x, y, names = preprocess(header, rows)
    cases = []
    first = None
    for name, params, solver in CASES:
        penalty = params.get("penalty", "l2")
        l1_ratio = params.get("l1_ratio", {"l2": 0.0, "l1": 1.0}.get(penalty))
        cw = params.get("class_weight")
        lr = LogisticRegression(C=params["C"], class_weight=cw, random_state=0,
                                **penalty_args(penalty, l1_ratio),
                                **solver)
        lr.fit(x, y)
        coef = lr.coef_[0]
        intercept = float(lr.intercept_[0])
        if cw == "balanced":
            n1 = y.sum()
            sw = np.where(y == 1, len(y) / (2 * n1), len(y) / (2 * (len(y) - n1)))
        else:
            sw = np.ones(len(y))
        kkt = kkt_violation(x, y, sw, params["C"], l1_ratio, coef, intercept)
        if kkt > 1e-6:
            sys.exit(f"{name}: not converged, KKT violation {kkt:g}")
        cases.append({
            "name": name,
            "params": params,
            "solver": solver["solver"],
            "kkt_violation": kkt,
            "intercept": intercept,
            "coef": {n: float(c) for n, c in zip(names, coef)},
        })
        if first is None:
            first = lr
    meta = {
        "generator": "internal/ml/testdata/make_golden.py",
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "data": "processed.cleveland.data, every row, target num > 0",
    }
    with open(os.path.join(HERE, "golden_logreg.json"), "w") as f:
        json.dump({"meta": meta, "features": names, "cases": cases}, f, indent=1)
        f.write("\n")

    # Metrics of the first case's probabilities at threshold 0.5.
    p = first.predict_proba(x)[:, 1]
    pred = (p >= 0.5).astype(float)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="uniform")
    bins = np.searchsorted(np.linspace(0, 1, 11)[1:-1], p, side="right")
    counts = np.bincount(bins, minlength=10)
    metrics = {
        "meta": meta,
        "threshold": 0.5,
        "y": [int(v) for v in y],
        "p": [float(v) for v in p],
        "accuracy": accuracy_score(y, pred),
        "roc_auc": roc_auc_score(y, p),
        "log_loss": log_loss(y, p),
        "brier": brier_score_loss(y, p),
        "precision": precision_score(y, pred),
        "recall": recall_score(y, pred),
        "specificity": recall_score(y, pred, pos_label=0),
        "f1": f1_score(y, pred),
        "calibration": {
            "bins": [int(b) for b in np.nonzero(counts)[0]],
            "count": [int(c) for c in counts[counts > 0]],
            "fraction_positive": [float(v) for v in prob_true],
            "mean_predicted": [float(v) for v in prob_pred],
        },
    }
    with open(os.path.join(HERE, "golden_metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
