"""Stage `evaluate`: score the model on the test set into metrics.json (kept in Git)."""

import json
import pickle

from sklearn.metrics import accuracy_score, f1_score, roc_auc_score

from common import read_csv

X, y = read_csv("data/prepared/test.csv")
with open("model.pkl", "rb") as f:
    model = pickle.load(f)
pred = model.predict(X)
metrics = {
    "accuracy": round(float(accuracy_score(y, pred)), 4),
    "f1": round(float(f1_score(y, pred)), 4),
    "roc_auc": round(float(roc_auc_score(y, model.predict_proba(X)[:, 1])), 4),
}
with open("metrics.json", "w") as f:
    json.dump(metrics, f, indent=2)
    f.write("\n")
