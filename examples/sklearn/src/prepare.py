"""Stage `prepare`: split the raw data into train and test sets."""

import os

from sklearn.model_selection import train_test_split

from common import params, read_csv, write_csv

p = params("prepare")
X, y = read_csv("data/raw.csv")
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=p["test_size"], random_state=p["seed"],
                                                    stratify=y)
os.makedirs("data/prepared", exist_ok=True)
write_csv("data/prepared/train.csv", X_train, y_train)
write_csv("data/prepared/test.csv", X_test, y_test)
