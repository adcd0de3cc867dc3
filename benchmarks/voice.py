"""Benchmark: the voice figures end to end, from a database holding ``--answers`` answers in one month.

Builds (once, kept at ``--db``) an SQLite database migrated to head with ``--answers`` synthetic
answers (default 10,000,000) for ``--agents`` agents (default 5,000) in ``--teams`` teams, all in the
month scored (the heaviest case), written with the driver's ``executemany`` in chunks; it prints how
long that took. Then, in a fresh child process (so its peak memory is the figures' own, not the
generator's), it times ``--repeats`` times each (best and median quoted):

- a raw SQL ``GROUP BY agent`` computing the same counts (answers, promoters, detractors, interaction
  answers, top boxes): the floor;
- ``voice scores --by agent`` (``scorecards.scores``: the database's counts, then intervals and the
  empirical Bayes shrinkage), the month's scorecard (``scorecards.compute_scorecard``: with the desk's
  FCR and the payout bands) and the quarter's country comparison (``quarterly.calibrated_countries``:
  counts by country x stratum x score, then equipercentile linking and a 1,000-copy bootstrap);

and prints each ratio to the floor (target <= 2x) and the child's peak resident memory (target <= 500 MB).

    python benchmarks/voice.py [--answers 10000000] [--agents 5000] [--repeats 3] [--db /tmp/voice-bench.db]
    python benchmarks/voice.py --answers 1000000        # a quicker run
    python benchmarks/voice.py --coverage               # the coverage tables of docs/methods.md (~1 min)
"""

from __future__ import annotations

import argparse
import json
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

MONTH = "2026-01"
QUARTER = "2026Q1"
COLUMNS = (
    "id, member_id, agent, team, channel, reason, product, country, month, answered_at, recommend, "
    "interaction, language, source, fingerprint, created_at"
)
RAW_SQL = (
    "SELECT agent, count(recommend), sum(recommend >= 9), sum(recommend <= 6), count(interaction), "
    "sum(interaction = 5), count(*) FROM voice_answers WHERE month = ? GROUP BY agent"
)
RAW_STRATA_SQL = (
    "SELECT country, reason, channel, product, recommend, interaction, count(*) FROM voice_answers "
    "WHERE month IN ('2026-01', '2026-02', '2026-03') "
    "GROUP BY country, reason, channel, product, recommend, interaction"
)


def build(path: Path, answers: int, agents: int, teams: int, seed: int, chunk: int = 200_000) -> float:
    """Migrate a fresh SQLite file and write the synthetic answers; the seconds it took."""
    from prevenance.db import make_engine
    from prevenance.migrate import upgrade

    began = time.perf_counter()
    path.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    rng = np.random.default_rng(seed)
    quality = rng.normal(0.0, 0.6, agents)
    names = [f"agent-{i:05d}" for i in range(agents)]
    team_names = [f"team-{i % teams:03d}" for i in range(agents)]
    channels, reasons = (
        ["phone", "email", "chat"],
        ["cards.lost", "rewards.balance", "travel.booking", "statement"],
    )
    products, countries = ["gold", "platinum", "green"], ["FR", "GB", "DE"]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    created = "2026-02-01 00:00:00.000000"
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=OFF")
    connection.execute("PRAGMA synchronous=OFF")
    indexes = connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'voice_answers' AND sql IS NOT NULL"
    ).fetchall()
    for name, _ in indexes:  # rebuilt once at the end: faster than kept up row by row
        connection.execute(f"DROP INDEX {name}")
    sql = f"INSERT INTO voice_answers ({COLUMNS}) VALUES ({', '.join('?' * 16)})"
    for first in range(0, answers, chunk):
        size = min(chunk, answers - first)
        agent = rng.integers(0, agents, size)
        latent = 7.6 + quality[agent] + rng.normal(0.0, 1.9, size)
        recommend = np.clip(np.rint(latent), 0, 10).astype(int).tolist()
        interaction = np.clip(np.rint((latent - 2.0) / 1.6), 1, 5).astype(int).tolist()
        missing = (rng.random(size) < 0.03).tolist()
        seconds = rng.integers(0, 86_400 * 28, size).tolist()
        picks = [rng.integers(0, len(x), size).tolist() for x in (channels, reasons, products, countries)]
        rows = [
            (
                f"csv:{first + i:09d}",
                1 + i % 1000,
                names[a],
                team_names[a],
                channels[picks[0][i]],
                reasons[picks[1][i]],
                products[picks[2][i]],
                countries[picks[3][i]],
                MONTH,
                (start + timedelta(seconds=seconds[i])).strftime("%Y-%m-%d %H:%M:%S.000000"),
                None if missing[i] else recommend[i],
                interaction[i],
                "fr",
                "import",
                "",
                created,
            )
            for i, a in enumerate(agent.tolist())
        ]
        connection.executemany(sql, rows)
        connection.commit()
    for _, create in indexes:
        connection.execute(create)
    connection.execute("ANALYZE")
    connection.commit()
    connection.close()
    return time.perf_counter() - began


def timed(fn: Callable[[], Any], repeats: int) -> tuple[list[float], Any]:
    times: list[float] = []
    result = None
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return times, result


def measure(path: Path, repeats: int) -> dict[str, Any]:
    """In this (fresh) process: the floor and the real figures, timed; peak memory."""
    from prevenance.db import make_engine, read_session
    from prevenance.voice import quarterly, scorecards

    engine = make_engine(f"sqlite:///{path}")
    now = datetime(2026, 2, 1, tzinfo=UTC)
    with engine.connect() as connection:
        raw_times, raw = timed(lambda: connection.exec_driver_sql(RAW_SQL, (MONTH,)).fetchall(), repeats)
        strata_times, strata = timed(lambda: connection.exec_driver_sql(RAW_STRATA_SQL).fetchall(), repeats)
    with read_session(engine) as session:
        score_times, scores = timed(lambda: scorecards.scores(session, by="agent", month=MONTH), repeats)
        card_times, cards = timed(
            lambda: scorecards.compute_scorecard(session, month=MONTH, now=now), repeats
        )
        country_times, countries = timed(
            lambda: quarterly.calibrated_countries(session, quarter=QUARTER), repeats
        )
    floor = {row[0]: row[1:] for row in raw}
    for item in scores["items"]:  # the figures rest on exactly the floor's counts
        n_rtf, promoters, detractors, *_ = floor[item["key"]]
        assert item["rtf"]["n"] == n_rtf, item
        assert abs(item["rtf"]["value"] - 100.0 * (promoters - detractors) / n_rtf) < 1e-9, item
    assert len(cards) == len(floor) and countries["n"] == scores["n"]
    return {
        "answers": scores["n"],
        "agents": len(floor),
        "cells": len(strata),
        "raw": raw_times,
        "raw_strata": strata_times,
        "scores": score_times,
        "scorecard": card_times,
        "countries": country_times,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def report(result: dict[str, Any]) -> None:
    best = {key: min(result[key]) for key in ("raw", "raw_strata", "scores", "scorecard", "countries")}
    print(
        f"{result['answers']:,} answers in {MONTH}, {result['agents']:,} agents, {result['cells']:,} strata cells"
    )
    for key, label in (
        ("raw", "raw SQL GROUP BY agent"),
        ("scores", "voice scores --by agent"),
        ("scorecard", "monthly scorecard"),
        ("raw_strata", "raw SQL GROUP BY strata"),
        ("countries", "country comparison"),
    ):
        print(f"{label:<26}: best {best[key]:.3f} s  median {statistics.median(result[key]):.3f} s")
    for key, floor in (("scores", "raw"), ("scorecard", "raw"), ("countries", "raw_strata")):
        ratio = best[key] / best[floor]
        print(
            f"ratio {key} / {floor:<11}: {ratio:.2f}x (target <= 2x: {'met' if ratio <= 2.0 else 'NOT met'})"
        )
    peak = result["peak_mb"]
    print(
        f"peak resident memory      : {peak:,.0f} MB (target <= 500 MB: {'met' if peak <= 500 else 'NOT met'})"
    )


# --- the coverage figures of docs/methods.md -----------------------------------------------------------

RTF_DISTRIBUTIONS = {
    "typical (60/25/15)": (0.60, 0.25, 0.15),
    "flat (33/34/33)": (0.33, 0.34, 0.33),
    "unhappy (10/30/60)": (0.10, 0.30, 0.60),
    "few detractors (45/45/10)": (0.45, 0.45, 0.10),
    "delighted (80/15/5)": (0.80, 0.15, 0.05),
    "extreme (90/8/2)": (0.90, 0.08, 0.02),
}
SIZES = (5, 10, 30, 100, 1000)


def coverage(seed: int, replications: int = 2_000) -> None:
    """Print the simulated coverage of every 95% interval (the tables quoted in docs/methods.md)."""
    from prevenance.voice import calibration, shrinkage, stats

    rng = np.random.default_rng(seed)
    r = replications
    print(f"RTF interval coverage ({r} replications per cell)")
    print("| promoters/passives/detractors | " + " | ".join(f"n={n}" for n in SIZES) + " |")
    for name, probs in RTF_DISTRIBUTIONS.items():
        cells = []
        for n in SIZES:
            counts = rng.multinomial(n, probs, size=r)
            _, low, high = stats.rtf_from_counts(counts[:, 0], counts[:, 2], np.full(r, n))
            truth = (probs[0] - probs[2]) * 100
            cells.append(f"{((low <= truth) & (truth <= high)).mean():.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("plain Wald (no pseudo-answers), n=10, for comparison:")
    for name, probs in RTF_DISTRIBUTIONS.items():
        counts = rng.multinomial(10, probs, size=r)
        p_hat, d_hat = counts[:, 0] / 10, counts[:, 2] / 10
        value = p_hat - d_hat
        se = np.sqrt(np.maximum(p_hat + d_hat - value**2, 0) / 10)
        truth = probs[0] - probs[2]
        print(
            f"  {name}: {((value - stats.Z95 * se <= truth) & (truth <= value + stats.Z95 * se)).mean():.3f}"
        )

    print(f"Excellence (Wilson) coverage ({r} replications per cell)")
    print("| true rate | " + " | ".join(f"n={n}" for n in SIZES) + " |")
    for p in (0.05, 0.2, 0.35, 0.5, 0.8):
        cells = []
        for n in SIZES:
            k = rng.binomial(n, p, size=r)
            _, low, high = stats.excellence_from_counts(k, np.full(r, n))
            cells.append(f"{((low <= p * 100) & (p * 100 <= high)).mean():.3f}")
        print(f"| {p:.0%} | " + " | ".join(cells) + " |")
    for n in (5, 10, 20):
        rates = []
        for p in np.linspace(0.05, 0.95, 19):
            k = rng.binomial(n, p, size=r)
            _, low, high = stats.excellence_from_counts(k, np.full(r, n))
            rates.append(((low <= p * 100) & (p * 100 <= high)).mean())
        print(
            f"Wilson n={n}: mean coverage over true rates 5%..95% {np.mean(rates):.3f} (min {np.min(rates):.3f})"
        )

    teams = 200
    mse_raw, mse_shrunk, covered = [], [], []
    for _ in range(teams):
        agents = 400
        true_p = np.clip(0.55 + rng.normal(0, 0.05, agents), 0.05, 0.95)
        answered = rng.integers(3, 40, agents)
        counts = np.array(
            [
                rng.multinomial(k, (q, 0.85 - q, 0.15))
                for k, q in zip(answered.tolist(), true_p.tolist(), strict=True)
            ]
        )
        true_rtf = (true_p - 0.15) * 100
        shrunk = shrinkage.shrink_rtf(counts[:, 0], counts[:, 2], answered)
        raw, _, _ = stats.rtf_from_counts(counts[:, 0], counts[:, 2], answered)
        mse_raw.append(np.mean((raw - true_rtf) ** 2))
        mse_shrunk.append(np.mean((shrunk.value - true_rtf) ** 2))
        covered.append(((shrunk.ci_low <= true_rtf) & (true_rtf <= shrunk.ci_high)).mean())
    print(
        f"Shrinkage ({teams} teams of 400 agents, 3..39 answers each, true RTF sd 5 points): RMSE raw "
        f"{np.sqrt(np.mean(mse_raw)):.1f} points, shrunk {np.sqrt(np.mean(mse_shrunk)):.1f}; "
        f"posterior interval coverage {np.mean(covered):.3f}"
    )

    def country(name: str, n: int, offset: float) -> pl.DataFrame:
        reason, channel, product = rng.integers(0, 4, n), rng.integers(0, 3, n), rng.integers(0, 2, n)
        experience = 6.6 + 0.5 * reason - 0.4 * channel + 0.6 * product + rng.normal(0, 1.8, n)
        return pl.DataFrame(
            {
                "country": name,
                "reason": reason.astype(str),
                "channel": channel.astype(str),
                "product": product.astype(str),
                "recommend": pl.Series(np.clip(np.rint(experience + offset), 0, 10), dtype=pl.Int8),
            }
        )

    big = country("FR", 2_000_000, 0.0)["recommend"].to_numpy()
    truth = ((big >= 9).mean() - (big <= 6).mean()) * 100
    sets, hits, raw_hits, errors, widths = 300, 0, 0, [], []
    for i in range(sets):
        rows = {
            row["country"]: row
            for row in calibration.country_scores(
                pl.concat([country("FR", 3000, 0.0), country("GB", 3000, 1.5)]), replicates=200, seed=i
            )
        }
        cal, raw_gb = rows["GB"]["calibrated"], rows["GB"]["raw"]
        hits += cal["ci_low"] <= truth <= cal["ci_high"]
        raw_hits += raw_gb["ci_low"] <= truth <= raw_gb["ci_high"]
        errors.append(cal["value"] - truth)
        widths.append(cal["ci_high"] - cal["ci_low"])
    print(
        f"Calibration ({sets} data sets, FR and GB 3,000 answers each, GB rates +1.5 scale points): true FR RTF "
        f"{truth:.1f}; calibrated GB mean error {np.mean(errors):+.2f} points, mean CI width {np.mean(widths):.1f}, "
        f"coverage of the FR truth {hits / sets:.3f} (raw GB: {raw_hits / sets:.3f})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--answers", type=int, default=10_000_000)
    parser.add_argument("--agents", type=int, default=5_000)
    parser.add_argument("--teams", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20260701)
    parser.add_argument("--db", type=Path, default=Path("/tmp/voice-bench.db"))
    parser.add_argument("--reuse", action="store_true", help="measure the database at --db as it is")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="print the interval coverage simulations of docs/methods.md instead",
    )
    args = parser.parse_args(argv)
    if args.coverage:
        coverage(args.seed)
        return 0
    if args.measure:
        print(json.dumps(measure(args.db, args.repeats)))
        return 0
    if not args.reuse:
        seconds = build(args.db, args.answers, args.agents, args.teams, args.seed)
        print(
            f"built {args.db} with {args.answers:,} answers in {seconds:.1f} s ({args.answers / seconds:,.0f}/s)"
        )
    child = subprocess.run(
        [sys.executable, __file__, "--measure", "--db", str(args.db), "--repeats", str(args.repeats)],
        capture_output=True,
        text=True,
        check=False,
    )
    if child.returncode != 0:
        print(child.stdout, child.stderr, file=sys.stderr)
        return 1
    report(json.loads(child.stdout.strip().splitlines()[-1]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
