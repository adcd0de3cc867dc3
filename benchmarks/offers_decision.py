"""Latency of the offers decision: scoring alone, and the whole decision inside an earn.

Builds a throw-away database (SQLite in a temporary directory, or ``--url``), members with a
synthetic history, a trained model and a few active offers, then prints p50/p99 of
(1) ``LogisticModel.score`` on a feature vector, (2) features + scoring for one member (one query),
(3) the offers hook alone inside ``record_transaction`` and (4) the whole ``record_transaction``
with and without the hook. Not a test: nothing here asserts. Keep ``--transactions`` modest (the
machine is shared): the default run takes under a minute on the shared 2-core box.

    .venv/bin/python benchmarks/offers_decision.py [--url <a scratch database: it is migrated and filled>]
        [--members 300] [--transactions 2000] [--cap 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from _offers import bench_offer

from prevenance.customers import service as customers
from prevenance.db import make_engine, run_in_transaction, unit_of_work
from prevenance.loyalty import programme
from prevenance.loyalty import service as loyalty
from prevenance.migrate import upgrade
from prevenance.offers import features, service
from prevenance.offers.service import HOOK_NAME
from prevenance.wiring import offer_hook

MERCHANTS = [("Librairie", "books"), ("Deliveroo", "dining"), ("Shell", "fuel"), ("Zara", "fashion")]


def _pct(samples: list[float]) -> str:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50 * 1e6:8.1f} µs   p99 {p99 * 1e6:8.1f} µs   (n={len(samples)})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=None)
    parser.add_argument("--members", type=int, default=300)
    parser.add_argument("--transactions", type=int, default=2000)
    parser.add_argument(
        "--cap",
        type=int,
        default=1,
        help="offers per member and campaign: 1 (default, typical: most payments"
        " find the member already decided) or large (worst case: nearly every payment decides anew)",
    )
    args = parser.parse_args()
    url = args.url or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    engine = make_engine(url)
    upgrade(engine)
    now = datetime(2026, 6, 1, tzinfo=UTC)
    rng = random.Random(1)
    refs = [f"B{i}" for i in range(args.members)]
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=now)
        for ref in refs:
            customers.upsert(
                session, ref=ref, data=customers.MemberData("A B", "a@b.fr", "fr", "FR", "gold"), now=now
            )
    print(f"history: {args.members} members × ~25 payments over 200 days …")
    service.invalidate_caches()
    loyalty.unregister_transaction_hook(HOOK_NAME)
    with unit_of_work(engine) as session:
        for m, ref in enumerate(refs):
            favourite = MERCHANTS[m % len(MERCHANTS)]
            for n in range(25):
                merchant, category = favourite if rng.random() < 0.6 else rng.choice(MERCHANTS)
                at = now - timedelta(days=rng.uniform(1, 200))
                tx = loyalty.TransactionInput(
                    f"h-{m}-{n}", ref, f"{rng.uniform(5, 90):.2f}", "EUR", merchant, category, at
                )
                loyalty.record_transaction(session, tx=tx, now=at)
    with unit_of_work(engine) as session:
        for i, (merchant, category) in enumerate(MERCHANTS[:3]):
            service.put_offer(
                session,
                offer_id=f"bench-{i}",
                data=bench_offer(
                    merchant=merchant,
                    category=category,
                    cap=args.cap,
                    now=now,
                    categories=[],
                    decision_days=1,
                ),
                now=now,
            )
        model_row = service.train_model(session, now=now)
    print(f"model v{model_row['version']}: AUC {model_row['metrics'].get('auc_holdout')}")
    with unit_of_work(engine) as session:
        model = service.current_model(session)
        history = features.load_history(session, member_id=1, as_of=now)
    vector = history.vector(merchant_key="librairie", category="books")
    score_samples = []
    for _ in range(20_000):
        start = time.perf_counter()
        model.score(vector)
        score_samples.append(time.perf_counter() - start)
    print(f"(1) scoring one vector            {_pct(score_samples)}")
    feature_samples = []
    with unit_of_work(engine) as session:
        for i in range(500):
            start = time.perf_counter()
            h = features.load_history(session, member_id=1 + i % args.members, as_of=now)
            model.score(h.vector(merchant_key="librairie", category="books"))
            feature_samples.append(time.perf_counter() - start)
    print(f"(2) features (1 query) + scoring  {_pct(feature_samples)}")

    hook_samples: list[float] = []
    inner = offer_hook()

    def timed(session: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return inner(session, **kwargs)
        finally:
            hook_samples.append(time.perf_counter() - start)

    def run(label: str, count: int) -> list[float]:
        samples = []
        for i in range(count):
            ref = refs[rng.randrange(len(refs))]
            merchant, category = rng.choice(MERCHANTS)
            tx = loyalty.TransactionInput(f"{label}-{i}", ref, "42.00", "EUR", merchant, category, now)
            start = time.perf_counter()
            run_in_transaction(engine, lambda s, tx=tx: loyalty.record_transaction(s, tx=tx, now=now))
            samples.append(time.perf_counter() - start)
        return samples

    loyalty.unregister_transaction_hook(HOOK_NAME)
    without = run("plain", args.transactions // 2)
    loyalty.register_transaction_hook(timed, name=HOOK_NAME)  # type: ignore[arg-type]
    with_hook = run("offers", args.transactions // 2)
    print(f"(3) offers hook inside the earn   {_pct(hook_samples)}")
    print(f"(4) record_transaction, no hook   {_pct(without)}")
    print(f"    record_transaction, offers    {_pct(with_hook)}")
    print(
        f"    mean overhead per transaction {(statistics.mean(with_hook) - statistics.mean(without)) * 1e3:.3f} ms"
    )
    engine.dispose()


if __name__ == "__main__":
    main()
