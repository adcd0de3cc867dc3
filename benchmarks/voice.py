"""Benchmark: the monthly per-agent scorecard on 10 million survey answers.

Generates ``--answers`` synthetic answers (default 10,000,000) for ``--agents`` agents (default 5,000)
in ``--teams`` teams over ``--months`` months (default 1: every answer falls in the month scored, the
heaviest case), with numpy (seeded) then Polars. In the same run it times, ``--repeats`` times each
(best and median quoted):

- ``prevenance.voice.analytics.agent_scorecards`` for the month (filter, sufficient statistics,
  CIs, empirical Bayes shrinkage, FCR join, payout bands);
- a bare Polars group-by computing the same raw RTF per agent for the same month.

It prints both times, their ratio (target <= 2x), answers per second and this process's peak
resident memory (``ru_maxrss``, which includes the generated frame).

    python benchmarks/voice.py [--answers 10000000] [--agents 5000] [--months 1] [--repeats 3]
    python benchmarks/voice.py --answers 1000000        # a quick run
    python benchmarks/voice.py --coverage               # the coverage tables of docs/methods.md (~1 min)
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import polars as pl

from prevenance.voice import analytics

GRID: dict[str, Any] = {
    "target_rtf": 40,
    "min_answers": 30,
    "bands": [
        {"name": "A", "min_shrunk_rtf": 55, "min_fcr": 0.8},
        {"name": "B", "min_shrunk_rtf": 40, "min_fcr": 0.7},
        {"name": "C", "min_shrunk_rtf": 20},
    ],
}


def generate(
    answers: int, agents: int, teams: int, months: int, seed: int
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Answers whose agents differ in quality (so shrinkage has something to do) and per-agent FCR counts."""
    rng = np.random.default_rng(seed)
    agent_quality = rng.normal(0.0, 0.6, agents)
    agent_of = rng.integers(0, agents, answers)
    month_of = rng.integers(0, months, answers)
    latent = 7.6 + agent_quality[agent_of] + rng.normal(0.0, 1.9, answers)
    recommend = np.clip(np.rint(latent), 0, 10).astype(np.int8)
    interaction = np.clip(np.rint((latent - 2.0) / 1.6), 1, 5).astype(np.int8)
    missing = rng.random(answers) < 0.03
    names = np.array([f"agent-{i:05d}" for i in range(agents)])
    team_names = np.array([f"team-{i % teams:03d}" for i in range(agents)])
    month_names = np.array([f"2026-{m + 1:02d}" for m in range(months)])
    start = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
    stamps = (
        start
        + month_of.astype(np.int64) * 30 * 86_400_000_000
        + rng.integers(0, 86_400_000_000 * 28, answers)
    )
    frame = pl.DataFrame(
        {
            "answer_id": pl.int_range(0, answers, eager=True).cast(pl.String),
            "contact_id": pl.int_range(0, answers, eager=True).cast(pl.String),
            "member_id": rng.integers(1, 2_000_000, answers),
            "agent": pl.Series(names).gather(agent_of),
            "team": pl.Series(team_names).gather(agent_of),
            "channel": pl.Series(np.array(["phone", "email", "chat"])).gather(rng.integers(0, 3, answers)),
            "reason": pl.Series(np.array(["lost_card", "statement", "points", "travel"])).gather(
                rng.integers(0, 4, answers)
            ),
            "product": pl.Series(np.array(["green", "gold", "platinum"])).gather(rng.integers(0, 3, answers)),
            "country": pl.Series(np.array(["FR", "GB", "DE"])).gather(rng.integers(0, 3, answers)),
            "month": pl.Series(month_names).gather(month_of),
            "answered_at": pl.Series(stamps).cast(pl.Datetime("us", "UTC")),
            "recommend": pl.Series(recommend).set(pl.Series(missing), None),
            "interaction": pl.Series(interaction),
            "language": "fr",
        }
    ).cast(analytics.ANSWER_SCHEMA)  # type: ignore[arg-type]
    fcr = pl.DataFrame({"agent": names, "fcr_n": rng.integers(50, 400, agents)}).with_columns(
        (pl.col("fcr_n") * rng.uniform(0.6, 0.95, agents)).cast(pl.Int64).alias("fcr_resolved")
    )
    return frame, fcr


def bare(answers: pl.DataFrame, month: str) -> pl.DataFrame:
    """The floor: the raw RTF per agent for the month, one Polars group-by, nothing else."""
    rec = pl.col("recommend")
    return (
        answers.filter(pl.col("month") == month)
        .group_by("agent")
        .agg(
            (((rec >= 9).sum().cast(pl.Int64) - (rec <= 6).sum()) * 100.0 / rec.is_not_null().sum()).alias(
                "rtf"
            )
        )
    )


def timed(fn: Callable[[], pl.DataFrame], repeats: int) -> tuple[list[float], pl.DataFrame]:
    times: list[float] = []
    result = pl.DataFrame()
    for _ in range(repeats):
        began = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - began)
    return times, result


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
    from prevenance.voice import calibration, stats

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
        shrunk = stats.shrink_rtf(counts[:, 0], counts[:, 2], answered)
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
    parser.add_argument("--months", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=20260701)
    parser.add_argument(
        "--coverage",
        action="store_true",
        help="print the interval coverage simulations of docs/methods.md instead",
    )
    args = parser.parse_args(argv)
    if args.coverage:
        coverage(args.seed)
        return 0

    began = time.perf_counter()
    answers, fcr = generate(args.answers, args.agents, args.teams, args.months, args.seed)
    month = "2026-01"
    in_month = answers.filter(pl.col("month") == month).height
    print(
        f"generated {answers.height:,} answers ({in_month:,} in {month}) for {args.agents:,} agents "
        f"in {time.perf_counter() - began:.1f} s (polars {pl.__version__}, {pl.thread_pool_size()} threads)"
    )

    bare_times, bare_result = timed(lambda: bare(answers, month), args.repeats)
    card_times, cards = timed(
        lambda: analytics.agent_scorecards(answers, fcr, GRID, month=month), args.repeats
    )

    check = cards.select("agent", "rtf").join(bare_result, on="agent", suffix="_bare")
    worst = float(np.nanmax(np.abs(check["rtf"].to_numpy() - check["rtf_bare"].to_numpy()), initial=0.0))
    if check.height != bare_result.height or worst > 1e-9:
        print(f"MISMATCH: scorecards and bare group-by disagree (max |diff| {worst})", file=sys.stderr)
        return 1

    best_bare, best_card = min(bare_times), min(card_times)
    ratio = best_card / best_bare
    print(f"bare polars group-by RTF : best {best_bare:.3f} s  median {statistics.median(bare_times):.3f} s")
    print(f"agent_scorecards         : best {best_card:.3f} s  median {statistics.median(card_times):.3f} s")
    print(f"ratio scorecards / bare  : {ratio:.2f}x (target <= 2x: {'met' if ratio <= 2.0 else 'NOT met'})")
    print(
        f"throughput               : {in_month / best_card:,.0f} answers/s scored "
        f"({in_month / best_bare:,.0f} answers/s bare)"
    )
    bands = cards.group_by("payout_band").len().sort("payout_band")
    print("payout bands             : " + ", ".join(f"{b}={n}" for b, n in bands.iter_rows()))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory     : {peak_mb:,.0f} MB (ru_maxrss, includes the generated frame)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
