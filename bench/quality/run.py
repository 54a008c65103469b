#!/usr/bin/env python3
"""bench/quality: Pulse's learning algorithms against scikit-learn on the SAME folds.

10 x 10 repeated stratified folds of Cleveland and of Hungarian (target num > 0). The fold of every
row is written to folds.csv, which both sides read; each side fits its preprocessing inside each
training fold only. Pulse trains through its own Go code (bench/quality/pulse), scikit-learn here;
the metrics of both are computed by the same code (sklearn.metrics) from the test-fold
predictions. Prints one table (mean ± sd of accuracy, ROC AUC and Brier score per model per
dataset, training time per fold) and checks the required margins.

Usage: python3 bench/quality/run.py [--repeats 10] [--out DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, brier_score_loss, roc_auc_score
from sklearn.model_selection import RepeatedStratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "datasets" / "heart-disease"
DATASETS = {"cleveland": DATA / "processed.cleveland.data", "hungarian": DATA / "processed.hungarian.data"}
NUMERIC = ["age", "trestbps", "chol", "thalach", "oldpeak", "ca"]
BINARY = ["sex", "fbs", "exang"]
CATEGORICAL = ["cp", "restecg", "slope", "thal"]
FEATURES = NUMERIC + BINARY + CATEGORICAL


def load(path):
    df = pd.read_csv(path, na_values=["?"], skipinitialspace=True)
    df.columns = [c.strip() for c in df.columns]
    y = (df["num"] > 0).astype(int).to_numpy()
    return df[FEATURES], y


def sklearn_models(seed):
    linear_pre = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
        ("bin", SimpleImputer(strategy="most_frequent"), BINARY),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), CATEGORICAL),
    ])
    # Trees: numeric and binary raw (missing values handled natively), categoricals one-hot
    # with missing kept as missing, as Pulse's gbdt encodes them.
    tree_pre = ColumnTransformer([
        ("raw", "passthrough", NUMERIC + BINARY),
        ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), CATEGORICAL),
    ])
    forest_pre = ColumnTransformer([
        ("num", SimpleImputer(strategy="median"), NUMERIC),
        ("bin", SimpleImputer(strategy="most_frequent"), BINARY),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")), CATEGORICAL),
    ])
    return {
        "sklearn LogisticRegression": make_pipeline(linear_pre, LogisticRegression(C=1.0, max_iter=1000)),
        "sklearn HistGradientBoosting": make_pipeline(tree_pre, HistGradientBoostingClassifier(random_state=seed)),
        "sklearn RandomForest": make_pipeline(forest_pre, RandomForestClassifier(n_estimators=300, random_state=seed, n_jobs=1)),
    }


def metrics(y, p):
    return {"accuracy": accuracy_score(y, p >= 0.5), "roc_auc": roc_auc_score(y, p), "brier": brier_score_loss(y, p)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--out", default=None, help="keep folds and predictions here")
    args = ap.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="pulse-quality-"))
    out.mkdir(parents=True, exist_ok=True)

    # 1. The folds, one file both sides read.
    rows = []
    data = {}
    for name, path in DATASETS.items():
        X, y = load(path)
        data[name] = (X, y)
        rskf = RepeatedStratifiedKFold(n_splits=10, n_repeats=args.repeats, random_state=20261125)
        for i, (_, test) in enumerate(rskf.split(X, y)):
            repeat, fold = divmod(i, 10)
            rows += [(name, repeat, fold, int(r)) for r in test]
    folds = pd.DataFrame(rows, columns=["dataset", "repeat", "fold", "row"])
    folds.to_csv(out / "folds.csv", index=False)

    # 2. Pulse, through its own Go code.
    cmd = ["go", "run", "./bench/quality/pulse", "-folds", str(out / "folds.csv"), "-data", str(DATA), "-out", str(out)]
    subprocess.run(cmd, cwd=ROOT, check=True)
    pulse_pred = pd.read_csv(out / "pulse_predictions.csv")
    pulse_time = pd.read_csv(out / "pulse_timings.csv")
    stream = pd.read_csv(out / "pulse_prequential.csv")

    # 3. scikit-learn on the same folds.
    results = []  # dataset, model, repeat, fold, accuracy, roc_auc, brier, train_s
    for name, (X, y) in data.items():
        f = folds[folds.dataset == name]
        for (repeat, fold), test_rows in f.groupby(["repeat", "fold"]):
            test = np.sort(test_rows.row.to_numpy())
            train = np.setdiff1d(np.arange(len(y)), test)
            for model, est in sklearn_models(seed=repeat).items():
                t0 = time.perf_counter()
                est.fit(X.iloc[train], y[train])
                took = time.perf_counter() - t0
                p = est.predict_proba(X.iloc[test])[:, 1]
                results.append({"dataset": name, "model": model, "repeat": repeat, "fold": fold, "train_s": took, **metrics(y[test], p)})
            pp = pulse_pred[(pulse_pred.dataset == name) & (pulse_pred.repeat == repeat) & (pulse_pred.fold == fold)]
            for model, g in pp.groupby("model"):
                g = g.sort_values("row")
                assert (g.row.to_numpy() == test).all(), f"pulse {model} predicted other rows than the fold's"
                tt = pulse_time[(pulse_time.dataset == name) & (pulse_time.repeat == repeat) & (pulse_time.fold == fold) & (pulse_time.model == model)]
                results.append({"dataset": name, "model": model, "repeat": repeat, "fold": fold, "train_s": float(tt.train_s.iloc[0]), **metrics(y[test], g.p.to_numpy())})
    res = pd.DataFrame(results)
    res.to_csv(out / "results.csv", index=False)

    # 4. The table.
    order = ["pulse logreg", "sklearn LogisticRegression", "pulse gbdt", "sklearn HistGradientBoosting", "pulse ftrl (stream)", "sklearn RandomForest"]
    lines = [f"bench/quality: {args.repeats}x10 repeated stratified folds (same folds for both sides), target num > 0",
             "", "| dataset | model | accuracy | ROC AUC | Brier | train ms/fold |", "| --- | --- | --- | --- | --- | --- |"]
    summary = {}
    for name in DATASETS:
        for model in order:
            r = res[(res.dataset == name) & (res.model == model)]
            if r.empty:
                continue
            s = {k: (r[k].mean(), r[k].std(ddof=1)) for k in ["accuracy", "roc_auc", "brier"]}
            s["train_ms"] = r.train_s.mean() * 1000
            summary[(name, model)] = s
            lines.append(f"| {name} | {model} | {s['accuracy'][0]:.3f} ± {s['accuracy'][1]:.3f} | {s['roc_auc'][0]:.4f} ± {s['roc_auc'][1]:.3f} | "
                         f"{s['brier'][0]:.4f} ± {s['brier'][1]:.3f} | {s['train_ms']:.2f} |")
    lines.append("")
    lines.append("Prequential ROC AUC of Pulse ftrl, one pass over each training fold (predict, then learn), by share of the stream seen:")
    lines.append("")
    lines.append("| dataset | " + " | ".join(f"{q}%" for q in range(10, 101, 10)) + " |")
    lines.append("| --- |" + " --- |" * 10)
    for name in DATASETS:
        cells = []
        sd = stream[stream.dataset == name]
        for q in range(10, 101, 10):
            aucs = []
            for _, g in sd.groupby(["repeat", "fold"]):
                g = g.sort_values("step")
                k = max(2, int(round(len(g) * q / 100)))
                h = g.iloc[:k]
                if h.y.nunique() == 2:
                    aucs.append(roc_auc_score(h.y, h.p))
            cells.append(f"{np.mean(aucs):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    checks = []
    for name in DATASETS:
        lr, sk_lr = summary[(name, "pulse logreg")], summary[(name, "sklearn LogisticRegression")]
        gb, sk_gb = summary[(name, "pulse gbdt")], summary[(name, "sklearn HistGradientBoosting")]
        ft = summary[(name, "pulse ftrl (stream)")]
        checks.append((f"{name}: pulse logreg AUC {lr['roc_auc'][0]:.4f} >= sklearn LogisticRegression {sk_lr['roc_auc'][0]:.4f} - 0.005", lr["roc_auc"][0] >= sk_lr["roc_auc"][0] - 0.005))
        checks.append((f"{name}: pulse gbdt AUC {gb['roc_auc'][0]:.4f} >= sklearn HistGradientBoosting {sk_gb['roc_auc'][0]:.4f}", gb["roc_auc"][0] >= sk_gb["roc_auc"][0]))
        checks.append((f"{name}: |pulse ftrl AUC {ft['roc_auc'][0]:.4f} - pulse logreg {lr['roc_auc'][0]:.4f}| <= 0.01", abs(ft["roc_auc"][0] - lr["roc_auc"][0]) <= 0.01))
        for a, b in (("pulse logreg", "sklearn LogisticRegression"), ("pulse gbdt", "sklearn HistGradientBoosting")):
            lines.append(f"{name}: training time {a} / {b} = {summary[(name, a)]['train_ms'] / summary[(name, b)]['train_ms']:.3f}")
    lines.append("")
    for text, ok in checks:
        lines.append(("PASS " if ok else "FAIL ") + text)
    report = "\n".join(lines)
    print(report)
    (out / "report.md").write_text(report + "\n")
    print(f"\nfolds, predictions and results are in {out}", file=sys.stderr)
    sys.exit(0 if all(ok for _, ok in checks) else 1)


if __name__ == "__main__":
    main()
