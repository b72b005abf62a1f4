"""Logging from training code: metrics, parameters and step-wise plot files written in
the layout ``mlver plots`` and ``mlver metrics`` read (the layout dvclive writes)::

    from mlver.live import Live

    with Live("eval") as live:
        live.log_param("lr", 0.01)
        for epoch in range(10):
            live.log_metric("train/loss", loss)
            live.next_step()
        live.log_plot("roc", y_true, y_score)
        live.log_plot("confusion", y_true, y_pred)

writes ``eval/metrics.json`` (the last value of each metric, nested at ``/``, and
``step``), ``eval/params.yaml``, ``eval/plots/metrics/NAME.tsv`` (``step`` and the value,
a row per step) and ``eval/plots/sklearn/{roc,precision_recall,confusion_matrix}.json``.
Pure Python: no NumPy, no Git, no cache, no other tool's repository; the output depends
only on what was logged (no timestamps), so a stage that uses it reproduces bit for bit.
Every file is written whole (a temporary name, then a rename).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any

from mlver.fsutil import atomic_write

PLOT_KINDS = {"roc": "roc", "precision_recall": "precision_recall", "prc": "precision_recall",
              "confusion": "confusion_matrix", "confusion_matrix": "confusion_matrix"}
DIGITS = 6  # rounding of computed curve values, so files do not change in the last bit


class Live:
    """Writes metrics, params and plot files below ``dir``. Files are written at every
    ``next_step()`` and at the end (leaving the ``with`` block, or ``end()``)."""

    def __init__(self, dir: str = "eval") -> None:
        self.dir = dir
        self.step = 0
        self._stepped = False
        self._logged_step: int | None = None  # the step of the last logged value
        self._metrics: dict[str, Any] = {}
        self._params: dict[str, Any] = {}
        self._series: dict[str, list[tuple[int, Any]]] = {}

    def __enter__(self) -> "Live":
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    # --- logging -------------------------------------------------------------------------

    def log_param(self, name: str, value: Any) -> None:
        self._params[name] = _plain(value, name)
        self._write_params()

    def log_params(self, params: dict[str, Any]) -> None:
        for name, value in params.items():
            self._params[name] = _plain(value, name)
        self._write_params()

    def log_metric(self, name: str, value: float | int) -> None:
        """The value of metric ``name`` at this step (``train/loss`` nests in metrics.json)."""
        if hasattr(value, "item") and not isinstance(value, (int, float)):
            value = value.item()  # a NumPy scalar
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"metric {name!r}: a number, not {type(value).__name__}")
        _check_name(name)
        self._metrics[name] = value
        self._logged_step = self.step
        series = self._series.setdefault(name, [])
        if series and series[-1][0] == self.step:
            series[-1] = (self.step, value)
        else:
            series.append((self.step, value))

    def next_step(self) -> None:
        """Write this step's files and move to the next step."""
        self._stepped = True
        self._write_metrics()
        self.step += 1

    def log_plot(self, kind: str, y_true: Sequence[Any], y_score: Sequence[Any], *, name: str | None = None,
                 labels: Sequence[Any] | None = None) -> str:
        """A plot file computed from labels: ``roc`` and ``precision_recall`` (``y_true``
        of 0/1 or booleans, ``y_score`` the scores of the positive class) or
        ``confusion`` (``y_score``: the predicted labels). Returns the file written,
        ``plots/sklearn/NAME.json`` (NAME defaults to ``roc``, ``precision_recall``,
        ``confusion_matrix``)."""
        if kind not in PLOT_KINDS:
            raise ValueError(f"unknown plot kind {kind!r} (known: roc, precision_recall, confusion)")
        truth, scores = list(y_true), list(y_score)
        if len(truth) != len(scores):
            raise ValueError(f"{kind}: y_true has {len(truth)} values and the other {len(scores)}")
        base = PLOT_KINDS[kind]
        if base == "confusion_matrix":
            doc: Any = confusion_records(truth, scores, labels)
        elif base == "roc":
            doc = {"roc": roc_records(truth, scores)}
        else:
            doc = {"prc": precision_recall_records(truth, scores)}
        _check_name(name or base)
        rel = f"plots/sklearn/{name or base}.json"
        self._write(rel, json.dumps(doc, indent=2) + "\n")
        return os.path.join(self.dir, rel)

    log_sklearn_plot = log_plot  # dvclive's name for the same call

    def end(self) -> None:
        self._write_metrics()
        if self._params:
            self._write_params()

    # --- files ---------------------------------------------------------------------------

    def _write(self, rel: str, text: str) -> None:
        path = os.path.join(self.dir, rel)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        atomic_write(path, text.encode("utf-8"))

    def _write_metrics(self) -> None:
        if not self._metrics and not self._stepped:
            return
        doc: dict[str, Any] = {}
        for name, value in self._metrics.items():
            *parents, leaf = name.split("/")
            node = doc
            for p in parents:
                node = node.setdefault(p, {})
            node[leaf] = value
        if self._stepped:  # the step of the values written (dvclive's), not the next one
            doc["step"] = self._logged_step if self._logged_step is not None else max(self.step - 1, 0)
        # a NaN or infinite value (a diverged loss) is written as dvclive writes it, NaN /
        # Infinity, which mlver and Python read back; `metrics show --json` gives it as null
        self._write("metrics.json", json.dumps(doc, indent=2) + "\n")
        for name, series in self._series.items():
            leaf = name.rsplit("/", 1)[-1]
            rows = "".join(f"{step}\t{_number(v)}\n" for step, v in series)
            self._write(f"plots/metrics/{name}.tsv", f"step\t{leaf}\n{rows}")

    def _write_params(self) -> None:
        import yaml

        self._write("params.yaml", yaml.safe_dump(self._params, sort_keys=False, default_flow_style=False))


def _check_name(name: str) -> None:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid name {name!r}: use letters, digits and '/' between parts")


def _plain(value: Any, name: str) -> Any:
    """A value YAML can hold as it is (tuples as lists)."""
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, dict):
        return {str(k): _plain(v, name) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, name) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item"):  # a NumPy scalar
        return _plain(value.item(), name)
    raise TypeError(f"param {name!r}: {type(value).__name__} is not a YAML value (str, number, bool, list, dict)")


def _number(v: float | int) -> str:
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return repr(v)


def _r(v: float) -> float:
    return round(v, DIGITS)


def _binary(truth: Iterable[Any]) -> list[bool]:
    out = []
    for t in truth:
        if isinstance(t, bool) or t in (0, 1):
            out.append(bool(t))
        else:
            raise ValueError(f"y_true must hold 0/1 or booleans, not {t!r}")
    return out


def _curve(truth: list[Any], scores: list[Any]) -> tuple[list[tuple[float, int, int]], int, int]:
    """(threshold, true positives, false positives) at each distinct score, highest
    first, and the numbers of positives and negatives."""
    pos = _binary(truth)
    pairs = sorted(zip((float(s) for s in scores), pos), key=lambda p: -p[0])
    points = []
    tp = fp = 0
    for i, (score, is_pos) in enumerate(pairs):
        tp += is_pos
        fp += not is_pos
        if i + 1 == len(pairs) or pairs[i + 1][0] != score:
            points.append((score, tp, fp))
    return points, sum(pos), len(pos) - sum(pos)


def roc_records(truth: list[Any], scores: list[Any]) -> list[dict[str, float]]:
    points, p, n = _curve(truth, scores)
    start = _r(points[0][0] + 1) if points else 1.0
    out = [{"fpr": 0.0, "tpr": 0.0, "threshold": start}]
    for thr, tp, fp in points:
        out.append({"fpr": _r(fp / n) if n else 0.0, "tpr": _r(tp / p) if p else 0.0, "threshold": _r(thr)})
    return out


def precision_recall_records(truth: list[Any], scores: list[Any]) -> list[dict[str, float]]:
    points, p, _ = _curve(truth, scores)
    return [{"precision": _r(tp / (tp + fp)), "recall": _r(tp / p) if p else 0.0, "threshold": _r(thr)}
            for thr, tp, fp in points]


def confusion_records(truth: list[Any], predicted: list[Any], labels: Sequence[Any] | None = None
                      ) -> list[dict[str, Any]]:
    """One record per sample, ``{"actual", "predicted"}`` (``labels``: names of class
    indexes, so ``0`` is written as ``labels[0]``)."""
    def name(v: Any) -> Any:
        if labels is not None and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(labels):
            return labels[v]
        return v.item() if hasattr(v, "item") else v

    return [{"actual": name(a), "predicted": name(b)} for a, b in zip(truth, predicted)]
