"""Scores a big heart-disease CSV with pandas + scikit-learn, as bench/batch compares with
`pulse score`: fits the pipeline on Cleveland (logreg: median-imputed standardised numbers,
mode-imputed one-hot categories, LogisticRegression(C=1), Pulse's preprocessing; gbdt:
HistGradientBoostingClassifier on raw numbers and one-hot categories), then reads the input in
chunks of --chunk-rows rows, appends probability, label and model_version, and writes CSV.

Usage: python3 sklearn_score.py --train CLEVELAND --input BIG.csv --output OUT.csv --algorithm logreg|gbdt
"""

import argparse

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMERIC = ["age", "trestbps", "chol", "thalach", "oldpeak", "ca"]
BINARY = ["sex", "fbs", "exang"]
CATEGORICAL = ["cp", "restecg", "slope", "thal"]
FEATURES = NUMERIC + BINARY + CATEGORICAL


def pipeline(algorithm):
    cats = make_pipeline(SimpleImputer(strategy="most_frequent"),
                         OneHotEncoder(handle_unknown="ignore", drop="if_binary" if algorithm == "logreg" else None))
    if algorithm == "logreg":
        nums = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        model = LogisticRegression(C=1.0, max_iter=1000)
    else:
        nums = "passthrough"
        model = HistGradientBoostingClassifier()
    pre = ColumnTransformer([("num", nums, NUMERIC), ("cat", cats, BINARY + CATEGORICAL)])
    return make_pipeline(pre, model)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--train", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--algorithm", default="logreg", choices=["logreg", "gbdt"])
    ap.add_argument("--chunk-rows", type=int, default=1_000_000)
    args = ap.parse_args()

    train = pd.read_csv(args.train, skipinitialspace=True, na_values="?")
    pipe = pipeline(args.algorithm).fit(train[FEATURES], (train["num"] > 0).astype(int))

    rows = 0
    with open(args.output, "w", newline="") as out:
        for i, chunk in enumerate(pd.read_csv(args.input, chunksize=args.chunk_rows, na_values="?")):
            p = pipe.predict_proba(chunk[FEATURES])[:, 1]
            chunk["probability"] = p
            chunk["label"] = (p >= 0.5).astype(np.int32)
            chunk["model_version"] = 1
            chunk.to_csv(out, header=i == 0, index=False, na_rep="?")
            rows += len(chunk)
    print(rows)


if __name__ == "__main__":
    main()
