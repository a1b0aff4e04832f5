"""Accuracy measures reported by every template: overall accuracy, Cohen's kappa, per-class
precision/recall/F1 with class counts, confusion matrix; event matching within a tolerance."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from eolab.errors import EolabError


def confusion_matrix(reference: Sequence, predicted: Sequence, labels: Sequence | None = None) -> tuple[np.ndarray, list]:
    """(matrix, labels): rows reference, columns prediction."""
    ref, pred = np.asarray(reference).astype(str), np.asarray(predicted).astype(str)
    if ref.shape != pred.shape:
        raise EolabError(f"{ref.size} reference labels but {pred.size} predictions")
    labels = [str(x) for x in labels] if labels is not None else sorted(set(ref) | set(pred))
    pos = {lab: i for i, lab in enumerate(labels)}
    m = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for r, p in zip(ref, pred):
        if r in pos and p in pos:
            m[pos[r], pos[p]] += 1
    return m, labels


def kappa(matrix: np.ndarray) -> float:
    """Cohen's kappa of a confusion matrix."""
    m = np.asarray(matrix, float)
    n = m.sum()
    if n == 0:
        return float("nan")
    po = np.trace(m) / n
    pe = float((m.sum(0) * m.sum(1)).sum()) / n ** 2
    return float((po - pe) / (1 - pe)) if pe < 1 else 1.0


def classification_report(reference: Sequence, predicted: Sequence, labels: Sequence | None = None) -> dict:
    """OA, kappa, macro F1, and per class: reference count, precision, recall, F1."""
    import pandas as pd

    m, labels = confusion_matrix(reference, predicted, labels)
    tp = np.diag(m).astype(float)
    ref_n, pred_n = m.sum(1).astype(float), m.sum(0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(pred_n > 0, tp / pred_n, np.nan)
        recall = np.where(ref_n > 0, tp / ref_n, np.nan)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1 = np.where(ref_n > 0, f1, np.nan)
    per_class = pd.DataFrame({"reference_count": ref_n.astype(int), "predicted_count": pred_n.astype(int),
                              "precision": precision, "recall": recall, "f1": f1}, index=labels)
    n = m.sum()
    return {"overall_accuracy": float(np.trace(m) / n) if n else float("nan"), "kappa": kappa(m),
            "macro_f1": float(np.nanmean(f1)), "n": int(n), "confusion": m, "labels": labels,
            "per_class": per_class}


def binary_f1(truth: Sequence[bool], flagged: Sequence[bool]) -> dict:
    """Precision, recall and F1 of a yes/no detection."""
    t, f = np.asarray(truth, bool), np.asarray(flagged, bool)
    tp, fp, fn = int((t & f).sum()), int((~t & f).sum()), int((t & ~f).sum())
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"tp": tp, "fp": fp, "fn": fn, "precision": precision, "recall": recall, "f1": f1}


def match_events(true_dates: Sequence[Sequence[Any]], found_dates: Sequence[Sequence[Any]],
                 tolerance_days: float = 6.0) -> dict:
    """One-to-one matching of event dates per parcel (greedy by distance) within ± tolerance.

    Returns counts of true events, found events, matched; recall (share of true events found
    within tolerance), precision, and the matched absolute errors in days.
    """
    errors: list[float] = []
    n_true = n_found = 0
    for truth, found in zip(true_dates, found_dates):
        t = np.array([np.datetime64(str(d)[:10]) for d in truth], dtype="datetime64[D]")
        f = np.array([np.datetime64(str(d)[:10]) for d in found], dtype="datetime64[D]")
        n_true += t.size
        n_found += f.size
        if not t.size or not f.size:
            continue
        dist = np.abs((t[:, None] - f[None, :]).astype(float))
        used_t, used_f = set(), set()
        for flat in np.argsort(dist, axis=None):
            i, j = divmod(int(flat), f.size)
            if dist[i, j] > tolerance_days:
                break
            if i in used_t or j in used_f:
                continue
            used_t.add(i)
            used_f.add(j)
            errors.append(float(dist[i, j]))
    matched = len(errors)
    return {"true": n_true, "found": n_found, "matched": matched,
            "recall": matched / n_true if n_true else float("nan"),
            "precision": matched / n_found if n_found else float("nan"),
            "median_abs_error_days": float(np.median(errors)) if errors else float("nan")}
