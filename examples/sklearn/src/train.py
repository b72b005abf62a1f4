"""Stage `train`: fit a random forest on the training set."""

import pickle

from sklearn.ensemble import RandomForestClassifier

from common import params, read_csv

p = params("train")
X, y = read_csv("data/prepared/train.csv")
model = RandomForestClassifier(n_estimators=p["n_estimators"], max_depth=p["max_depth"], random_state=p["seed"],
                               n_jobs=1)
model.fit(X, y)
with open("model.pkl", "wb") as f:
    pickle.dump(model, f)
