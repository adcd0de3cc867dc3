"""The propensity model: logistic regression fitted in NumPy on the transaction history.

Training set (``build_training_set``): for reference dates every 30 days over the history (the last
``horizon`` days kept back so every label is observed), for every member with a payment in the year
before the date and every target (the catalogue's offers, or the busiest merchants when there is
none), the features as of the date and the label "paid at the target's merchant or in its category
within ``horizon`` days after". Members are split 75/25 by a hash of their id, so one member never
sits on both sides. The fit is L2-penalised Newton-Raphson (IRLS) on standardised features; the
held-out AUC is reported with its n and a 95% CI (Hanley & McNeil 1982).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray
from sqlalchemy.orm import Session

from prevenance.loyalty import history
from prevenance.offers.features import (
    FEATURES,
    HISTORY_DAYS,
    WINDOW_DAYS,
    BenefitEventsProvider,
    feature_vector,
)
from prevenance.offers.rules import LogisticModel

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Target:
    """What a label looks for: a partner merchant (casefolded) and optionally its category."""

    merchant_key: str
    category: str | None


@dataclass(frozen=True)
class TrainingSet:
    x: NDArray[np.float64]
    y: NDArray[np.float64]
    member: NDArray[np.int64]
    reference_dates: list[datetime]
    targets: list[Target]


def fit_logistic(
    x: NDArray[np.float64], y: NDArray[np.float64], *, l2: float = 1.0, iterations: int = 50
) -> tuple[float, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Intercept, weights (on standardised features), means and scales of an L2 logistic fit."""
    means = x.mean(axis=0)
    scales = x.std(axis=0)
    scales[scales < 1e-9] = 1.0
    z = np.hstack([np.ones((x.shape[0], 1)), (x - means) / scales])
    beta = np.zeros(z.shape[1])
    penalty = np.full(z.shape[1], l2)
    penalty[0] = 0.0  # the intercept is not shrunk
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -35, 35)))
        w = p * (1 - p)
        gradient = z.T @ (y - p) - penalty * beta
        hessian = (z * w[:, None]).T @ z + np.diag(penalty) + 1e-9 * np.eye(z.shape[1])
        step = np.linalg.solve(hessian, gradient)
        beta = beta + step
        if float(np.max(np.abs(step))) < 1e-8:
            break
    return float(beta[0]), beta[1:], means, scales


def auc_with_ci(scores: NDArray[np.float64], labels: NDArray[np.float64]) -> dict[str, Any]:
    """Area under the ROC curve (Mann-Whitney, ties averaged) with a Hanley-McNeil 95% CI."""
    positives, negatives = int(labels.sum()), int(len(labels) - labels.sum())
    if positives == 0 or negatives == 0:
        return {"value": None, "n": len(labels), "positives": positives, "ci_low": None, "ci_high": None}
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2 + 1
        i = j + 1
    auc = (ranks[labels == 1].sum() - positives * (positives + 1) / 2) / (positives * negatives)
    q1, q2 = auc / (2 - auc), 2 * auc**2 / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc**2) + (negatives - 1) * (q2 - auc**2)) / (
        positives * negatives
    )
    half = 1.96 * math.sqrt(max(variance, 0.0))
    return {
        "value": round(float(auc), 4),
        "n": len(labels),
        "positives": positives,
        "ci_low": round(max(0.0, float(auc) - half), 4),
        "ci_high": round(min(1.0, float(auc) + half), 4),
    }


def _transactions(session: Session, start: datetime, end: datetime) -> pl.DataFrame:
    rows = history.list_payments(session, start=start, end=end)
    return pl.DataFrame(
        {
            "member": [r[0] for r in rows],
            "merchant": [str(r[1]).strip().casefold() for r in rows],
            "category": [str(r[2]).casefold() for r in rows],
            "amount": [float(r[3]) for r in rows],
            "at": [r[4] for r in rows],
        },
        schema={
            "member": pl.Int64,
            "merchant": pl.Utf8,
            "category": pl.Utf8,
            "amount": pl.Float64,
            "at": pl.Datetime("us", "UTC"),
        },
    )


def history_bounds(session: Session) -> tuple[datetime, datetime] | None:
    """First and last payment date in the database."""
    return history.payment_bounds(session)


def busiest_targets(frame: pl.DataFrame, k: int = 5) -> list[Target]:
    """The ``k`` merchants with the most payers, each with its usual category (when no offer exists)."""
    top = (
        frame.group_by("merchant")
        .agg(pl.col("member").n_unique().alias("payers"), pl.col("category").mode().first().alias("category"))
        .sort(["payers", "merchant"], descending=[True, False])
        .head(k)
    )
    return [Target(m, c) for m, c in zip(top["merchant"].to_list(), top["category"].to_list(), strict=True)]


def build_training_set(
    session: Session,
    *,
    targets: Sequence[Target],
    now: datetime,
    horizon_days: int = 30,
    step_days: int = 30,
    max_dates: int = 6,
    progress: Progress | None = None,
    benefit_events: BenefitEventsProvider | None = None,
) -> TrainingSet:
    """Features as of each reference date and the label observed in the ``horizon`` after it.

    ``benefit_events`` gives the benefit usages of the period (desk data, passed in by the
    composition layer); without it the feature is 0 for everyone, as it is at decision time."""
    bounds = history_bounds(session)
    if bounds is None:
        raise ValueError("no card transactions to learn from")
    first, last = bounds
    last = min(last, now)
    horizon = timedelta(days=horizon_days)
    dates: list[datetime] = []
    ref = last - horizon
    while ref - timedelta(days=WINDOW_DAYS) >= first and len(dates) < max_dates:
        dates.append(ref)
        ref -= timedelta(days=step_days)
    if not dates:
        dates = [first + (last - first) / 2]
    frame = _transactions(session, min(dates) - timedelta(days=HISTORY_DAYS), max(dates) + horizon)
    chosen = list(targets) or busiest_targets(frame)
    events = (
        benefit_events(session, min(dates) - timedelta(days=WINDOW_DAYS), max(dates))
        if benefit_events is not None
        else []
    )
    usages = pl.DataFrame(
        {"member": [m for m, _ in events], "at": [at for _, at in events]},
        schema={"member": pl.Int64, "at": pl.Datetime("us", "UTC")},
    )
    xs: list[list[float]] = []
    ys: list[float] = []
    members: list[int] = []
    for index, ref in enumerate(sorted(dates)):
        if progress:
            progress("features", index, len(dates))
        past = frame.filter((pl.col("at") < ref) & (pl.col("at") >= ref - timedelta(days=HISTORY_DAYS)))
        recent = past.filter(pl.col("at") >= ref - timedelta(days=WINDOW_DAYS))
        base = past.group_by("member").agg(pl.col("at").max().alias("last"))
        per_member = recent.group_by("member").agg(pl.len().alias("n"), pl.col("amount").sum().alias("spend"))
        by_merchant = recent.group_by(["member", "merchant"]).agg(pl.col("amount").sum().alias("s"))
        by_category = recent.group_by(["member", "category"]).agg(pl.col("amount").sum().alias("s"))
        future = frame.filter((pl.col("at") >= ref) & (pl.col("at") < ref + horizon))
        used = dict(
            usages.filter((pl.col("at") >= ref - timedelta(days=WINDOW_DAYS)) & (pl.col("at") < ref))
            .group_by("member")
            .agg(pl.len())
            .iter_rows()
        )
        table = base.join(per_member, on="member", how="left").fill_null(0)
        merchant_map = {(m, k): s for m, k, s in by_merchant.iter_rows()}
        category_map = {(m, k): s for m, k, s in by_category.iter_rows()}
        for target in chosen:
            hit = future.filter(pl.col("merchant") == target.merchant_key)
            if target.category:
                hit = future.filter(
                    (pl.col("merchant") == target.merchant_key) | (pl.col("category") == target.category)
                )
            positive = set(hit["member"].to_list())
            for member, last_at, n, spend in table.iter_rows():
                xs.append(
                    feature_vector(
                        recency_days=(ref - last_at).total_seconds() / 86400,
                        transactions_90d=float(n),
                        spend_90d=float(spend),
                        partner_spend_90d=merchant_map.get((member, target.merchant_key), 0.0),
                        category_spend_90d=category_map.get((member, target.category), 0.0)
                        if target.category
                        else 0.0,
                        benefits_used_90d=float(used.get(member, 0)),
                    )
                )
                ys.append(1.0 if member in positive else 0.0)
                members.append(int(member))
    if progress:
        progress("features", len(dates), len(dates))
    return TrainingSet(
        x=np.asarray(xs, dtype=np.float64).reshape(-1, len(FEATURES)),
        y=np.asarray(ys, dtype=np.float64),
        member=np.asarray(members, dtype=np.int64),
        reference_dates=sorted(dates),
        targets=chosen,
    )


def _in_holdout(member_id: int) -> bool:
    return hashlib.sha256(f"train:{member_id}".encode()).digest()[0] < 64  # 25%


def train(data: TrainingSet, *, l2: float = 1.0) -> tuple[LogisticModel, dict[str, Any]]:
    """Fit on 75% of members, measure AUC on the other 25%, then refit on everyone for use."""
    if len(data.y) < 20 or data.y.min() == data.y.max():
        raise ValueError(
            f"not enough varied examples to train ({len(data.y)} rows, {int(data.y.sum())} positive)"
        )
    held = np.array([_in_holdout(int(m)) for m in data.member], dtype=bool)
    metrics: dict[str, Any] = {
        "n": len(data.y),
        "positives": int(data.y.sum()),
        "base_rate": round(float(data.y.mean()), 4),
        "reference_dates": [d.isoformat() for d in data.reference_dates],
        "targets": [{"merchant": t.merchant_key, "category": t.category} for t in data.targets],
        "l2": l2,
    }
    if held.any() and (~held).any() and 0 < data.y[~held].sum() < (~held).sum():
        intercept, weights, means, scales = fit_logistic(data.x[~held], data.y[~held], l2=l2)
        z = intercept + ((data.x[held] - means) / scales) @ weights
        metrics["auc_holdout"] = auc_with_ci(1 / (1 + np.exp(-z)), data.y[held])
        metrics["n_train"] = int((~held).sum())
        metrics["n_holdout"] = int(held.sum())
    intercept, weights, means, scales = fit_logistic(data.x, data.y, l2=l2)
    model = LogisticModel(
        version=None,
        features=FEATURES,
        intercept=intercept,
        weights=tuple(float(w) for w in weights),
        means=tuple(float(m) for m in means),
        scales=tuple(float(s) for s in scales),
        metrics=metrics,
    )
    return model, metrics
