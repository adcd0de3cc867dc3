"""Benchmark: the ROI report of one campaign over ``--members`` members (default 100,000).

Builds a SQLite file (or uses ``--database-url``, emptied first is up to you: use a fresh database):
members across five countries, ``--per-member`` card transactions each (default 4) spread over the
six months around the campaign, and one decision per member (10% held out as control). Rows are
written with bulk Core inserts straight into the tables: this measures the report, not the ledger,
so the points columns are filled but no posting is made. Then it times
``offers.roi.service.roi_report`` (Welch intervals, and with ``--bootstrap`` the bootstrap too),
and prints the peak Python allocation during one report (``tracemalloc``, a separate run because
tracing slows it) and the process's peak resident memory (``ru_maxrss``, which includes the seeding).

    python benchmarks/roi.py [--members 100000] [--per-member 4] [--bootstrap]
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert

from prevenance.customers.tables import Member
from prevenance.db import make_engine, read_session, unit_of_work
from prevenance.loyalty import programme
from prevenance.loyalty.tables import CardTransaction
from prevenance.migrate import upgrade
from prevenance.offers.roi import service as roi_service
from prevenance.offers.tables import Offer, OfferDecision

COUNTRIES = ("FR", "GB", "DE", "IT", "ES")
START = datetime(2026, 3, 1, tzinfo=UTC)
CHUNK = 20_000


def seed(engine: Engine, members: int, per_member: int, rng: np.random.Generator) -> None:
    now = START + timedelta(days=200)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=now)
        session.execute(
            insert(Offer),
            [
                {
                    "id": "BENCH",
                    "partner_merchant": "Maison Laurent",
                    "partner_category": "dining",
                    "reward_kind": "bonus_points",
                    "reward": {"points": 500},
                    "eligibility": {},
                    "cap_per_member": 1,
                    "spent_points": 0,
                    "unit_cost_eur": "3.50",
                    "margin_rate": "0.25",
                    "expected_spend_eur": "100",
                    "holdout_share": "0.10",
                    "decision_days": 30,
                    "valid_from": START,
                    "valid_until": START + timedelta(days=60),
                    "title_fr": "Dîner",
                    "title_en": "Dinner",
                    "text_fr": "x",
                    "text_en": "x",
                    "status": "active",
                    "fingerprint": "0" * 64,
                    "created_at": START,
                    "updated_at": START,
                }
            ],
        )
    for first in range(0, members, CHUNK):
        ids = range(first + 1, min(members, first + CHUNK) + 1)
        countries = rng.choice(COUNTRIES, size=len(ids))
        control = rng.random(len(ids)) < 0.10
        t0s = [START + timedelta(seconds=int(s)) for s in rng.integers(0, 60 * 86400, size=len(ids))]
        with unit_of_work(engine) as session:
            session.execute(
                insert(Member),
                [
                    {
                        "id": i,
                        "ref": f"bm-{i:07d}",
                        "name": f"Member {i}",
                        "email": f"m{i}@example.eu",
                        "language": "fr" if c == "FR" else "en",
                        "country": str(c),
                        "product": "gold",
                        "created_at": START - timedelta(days=400),
                        "updated_at": START - timedelta(days=400),
                    }
                    for i, c in zip(ids, countries, strict=True)
                ],
            )
            transactions: list[dict[str, Any]] = []
            for i, t0, held in zip(ids, t0s, control, strict=True):
                lift = 1.0 if held else 1.08
                for k in range(per_member):
                    offset = int(rng.integers(-90 * 86400, 90 * 86400))
                    amount = float(rng.lognormal(4.0, 0.8)) * (lift if offset >= 0 else 1.0)
                    minor = max(1, int(amount * 100))
                    transactions.append(
                        {
                            "id": f"tx-{i}-{k}",
                            "member_id": i,
                            "amount_minor": minor,
                            "currency": "EUR",
                            "merchant": "Shop",
                            "category": "dining",
                            "occurred_at": t0 + timedelta(seconds=offset),
                            "fx_rate": "1",
                            "amount_eur": str(Decimal(minor) / 100),
                            "product": "gold",
                            "unit": "points",
                            "units_per_euro": 1,
                            "minimum_earn": 0,
                            "units_earned": minor // 100,
                            "units_current": minor // 100,
                            "refunded_minor": 0,
                            "created_at": now,
                        }
                    )
            session.execute(insert(CardTransaction), transactions)
            session.execute(
                insert(OfferDecision),
                [
                    {
                        "id": f"d-{i}",
                        "offer_id": "BENCH",
                        "member_id": i,
                        "transaction_id": f"trigger-{i}",
                        "arm": "control" if held else "treatment",
                        "decided_at": t0,
                        "expires_at": t0 + timedelta(days=30),
                        "propensity": 0.2,
                        "expected_value": 1.0,
                        "status": "would_have_received" if held else ("rewarded" if i % 4 == 0 else "made"),
                    }
                    for i, t0, held in zip(ids, t0s, control, strict=True)
                ],
            )


def report(engine: Engine, ci: str) -> dict[str, Any]:
    with read_session(engine) as session:
        return roi_service.roi_report(
            session, offer_id="BENCH", now=START + timedelta(days=200), ci=ci, replicates=2000
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--per-member", type=int, default=4)
    parser.add_argument("--bootstrap", action="store_true", help="also time the bootstrap intervals")
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'roi.db'}"
        engine = make_engine(url)
        upgrade(engine)
        started = time.perf_counter()
        seed(engine, args.members, args.per_member, np.random.default_rng(7))
        print(
            f"seeded {args.members:,} members, {args.members * args.per_member:,} transactions "
            f"in {time.perf_counter() - started:.1f} s ({engine.dialect.name})"
        )
        methods = ["welch", "bootstrap"] if args.bootstrap else ["welch"]
        for ci in methods:
            started = time.perf_counter()
            result = report(engine, ci)
            elapsed = time.perf_counter() - started
            spend = result["spend"]
            print(
                f"roi ({ci}): {elapsed:.2f} s — n {result['treatment']['n']:,} treated / "
                f"{result['control']['n']:,} control, spend DiD {spend['did']:.2f} EUR "
                f"[{spend['ci_low']:.2f}; {spend['ci_high']:.2f}], ROI {result['roi']['value']:.2f} "
                f"[{result['roi']['ci_low']:.2f}; {result['roi']['ci_high']:.2f}]"
            )
        tracemalloc.start()
        report(engine, "welch")
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"peak Python allocation during one report: {peak / 2**20:.0f} MiB")
        print(
            f"peak resident memory of this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB"
        )
        engine.dispose()


if __name__ == "__main__":
    main()
