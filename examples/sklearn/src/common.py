"""Helpers shared by the stage scripts: params and CSV files without pandas."""

import csv

import numpy as np
import yaml


def params(section: str) -> dict:
    with open("params.yaml") as f:
        return yaml.safe_load(f)[section]


def write_csv(path: str, X: np.ndarray, y: np.ndarray) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([f"f{i}" for i in range(X.shape[1])] + ["label"])
        for row, label in zip(X, y):
            w.writerow([f"{v:.6f}" for v in row] + [int(label)])


def read_csv(path: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    return data[:, :-1], data[:, -1].astype(int)
