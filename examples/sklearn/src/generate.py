"""Stage `generate`: a reproducible synthetic classification dataset."""

import os

from sklearn.datasets import make_classification

from common import params, write_csv

p = params("generate")
X, y = make_classification(n_samples=p["samples"], n_features=p["features"], n_informative=p["features"] // 2,
                           random_state=p["seed"])
os.makedirs("data", exist_ok=True)
write_csv("data/raw.csv", X, y)
