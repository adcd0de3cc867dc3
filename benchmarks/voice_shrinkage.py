"""Simulation: how honest are the shrunk agent RTFs and P(above target) on teams of 8 agents?

The figures of docs/methods.md#shrinkage. Each replication is one team of 8 agents with 3..39 answers
each (uniform), whose true RTFs are drawn N(mean, sd) points; each true RTF becomes promoter/passive/
detractor shares by one of two generators:

- ``fixed``: 25% passives (fewer when |RTF| > 75 points), the rest split to give the RTF;
- ``latent``: an ordinal probit: a latent N(m, 1) answer cut at -0.84 and 0 (20/30/50% at m = 0),
  m solved so that the shares give the RTF (passives shrink as the agent gets better or worse).

Every team is scored alone (each its own country, so nothing is borrowed between replications), with
``shrinkage.shrink_rtf``. Printed per scenario and target: the coverage of the 95% posterior intervals,
how many agents were stated P(above target) >= 0.9 and the share of them truly above, and the same
for P <= 0.1 (truly below). ``--pooled`` also runs countries of 5 teams (the three-level model).
Targets: 10 points below the mean, at it, 5 and 15 points above it, and the pay target 60.
``--margin 0`` gives the plain posterior probability (before P was read at the team mean's bounds).

    python benchmarks/voice_shrinkage.py [--teams 2000] [--seed 1] [--pooled] [--margin 0]
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from prevenance.voice import shrinkage

AGENTS = 8
SCENARIOS = (
    ("no true spread", 30.0, 0.0),
    ("sd 10 points", 30.0, 10.0),
    ("mean 65 sd 10", 65.0, 10.0),
    ("mean 50 sd 10", 50.0, 10.0),
)
CUT_DETRACTOR, CUT_PROMOTER = -0.8416, 0.0


def _phi(x: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.vectorize(math.erf)(x / math.sqrt(2.0))), dtype=np.float64)


def shares(theta: np.ndarray, generator: str) -> tuple[np.ndarray, np.ndarray]:
    """Promoter and detractor shares whose difference is ``theta`` (proportion scale)."""
    if generator == "fixed":
        passives = np.minimum(0.25, 1.0 - np.abs(theta))
        return (1 - passives + theta) / 2, (1 - passives - theta) / 2
    low, high = np.full_like(theta, -6.0), np.full_like(theta, 6.0)
    for _ in range(50):
        m = (low + high) / 2
        value = _phi(m - CUT_PROMOTER) - _phi(CUT_DETRACTOR - m)
        low, high = np.where(value < theta, m, low), np.where(value < theta, high, m)
    m = (low + high) / 2
    return _phi(m - CUT_PROMOTER), _phi(CUT_DETRACTOR - m)


def simulate(
    mean: float, sd: float, teams: int, generator: str, rng: np.random.Generator, team_sd: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    team_mean = mean / 100 + team_sd / 100 * rng.standard_normal((teams, 1))
    theta = np.clip(team_mean + sd / 100 * rng.standard_normal((teams, AGENTS)), -0.97, 0.97).ravel()
    n = rng.integers(3, 40, theta.size)
    p, d = shares(theta, generator)
    promoters = rng.binomial(n, p)
    detractors = rng.binomial(n - promoters, np.clip(d / np.maximum(1 - p, 1e-12), 0, 1))
    return promoters, detractors, n, theta * 100


def report(
    teams: int,
    seed: int,
    per_country: int = 1,
    team_sd: float = 0.0,
    margin: float = shrinkage.TEAM_MEAN_MARGIN,
) -> None:
    rng = np.random.default_rng(seed)
    print(
        f"{teams} teams of {AGENTS} agents, 3..39 answers each"
        + (f"; countries of {per_country} teams, team means sd {team_sd} points" if per_country > 1 else "")
    )
    print(
        "| generator | scenario | target | coverage | stated >= 0.9 | truly above | stated <= 0.1 | truly below |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for generator in ("fixed", "latent"):
        for name, mean, sd in SCENARIOS:
            promoters, detractors, n, truth = simulate(mean, sd, teams, generator, rng, team_sd)
            team = np.repeat(np.arange(teams), AGENTS)
            for target in sorted({60.0, mean - 10.0, mean, mean + 5.0, mean + 15.0}):
                started = time.perf_counter()
                shrunk = shrinkage.shrink_rtf(
                    promoters,
                    detractors,
                    n,
                    teams=team,
                    countries=team // per_country,
                    target=target,
                    team_mean_margin=margin,
                )
                assert shrunk.p_above_target is not None
                covered = ((shrunk.ci_low <= truth) & (truth <= shrunk.ci_high)).mean()
                high = shrunk.p_above_target >= 0.9
                low = shrunk.p_above_target <= 0.1
                above = f"{(truth[high] > target).mean():.3f}" if high.any() else "-"
                below = f"{(truth[low] <= target).mean():.3f}" if low.any() else "-"
                print(
                    f"| {generator} | {name} | {target:.0f} | {covered:.3f} | {int(high.sum())} | {above} | "
                    f"{int(low.sum())} | {below} |",
                    f"<!-- {time.perf_counter() - started:.2f} s -->",
                )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--teams", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pooled", action="store_true", help="also countries of 5 teams (three levels)")
    parser.add_argument(
        "--margin",
        type=float,
        default=shrinkage.TEAM_MEAN_MARGIN,
        help="P(above) read at the team mean -/+ this many sd (default 1.645; 0 = plain posterior)",
    )
    args = parser.parse_args(argv)
    report(args.teams, args.seed, margin=args.margin)
    if args.pooled:
        report(args.teams, args.seed + 1, per_country=5, team_sd=0.0, margin=args.margin)
        report(args.teams, args.seed + 2, per_country=5, team_sd=5.0, margin=args.margin)
    return 0


if __name__ == "__main__":
    sys.exit(main())
