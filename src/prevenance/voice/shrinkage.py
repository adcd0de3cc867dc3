"""Agents' scores shrunk toward their team: a hierarchical model, so few answers are not ranked on noise.

Pure numpy, no I/O; the model, its checks by simulation and what it cannot do are in
``docs/methods.md#shrinkage``. The plain scores and their intervals are in ``voice.stats``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from prevenance.voice.stats import RTF_PSEUDO, Z95, FloatArray

SHRINK_METHOD = (
    "rtf shrunk: hierarchical normal model toward the team, team answer variance, between-agent "
    "variance by REML integrated over a grid, 95% posterior"
)
EXCELLENCE_SHRINK_METHOD = SHRINK_METHOD.replace("rtf shrunk", "excellence shrunk")


@dataclass(frozen=True)
class Shrunk:
    """Empirical Bayes estimates, one element per agent (points, like the raw score)."""

    value: FloatArray
    """Posterior mean."""
    ci_low: FloatArray
    ci_high: FloatArray
    """2.5% and 97.5% posterior quantiles (equal-tailed 95% interval)."""
    sd: FloatArray
    p_above_target: FloatArray | None
    """P(true score > target), read at the team mean's one-sided bounds (``shrink_rtf``); None without target."""
    prior_mean: FloatArray
    """The team mean the agent is pulled toward (posterior mean of mu, averaged over tau)."""
    tau2: FloatArray
    """Between-agent variance of the agent's group (proportion scale): its posterior mean over the grid."""
    weight: FloatArray
    """How much of the agent's own score is kept: 0 = all team, 1 = all agent (posterior mean of 1 - B)."""
    tau_source: npt.NDArray[np.str_] | None = None
    """Where the agent's between-agent variance was estimated: ``team``, ``country`` or ``all``."""


TAU_POINTS = 41
"""Points of the grid on which the between-agent standard deviation tau is integrated out."""

SHRINK_MIN_GROUP = 3
"""A team needs this many agents with answers to estimate its own between-agent variance."""

TEAM_MEAN_MARGIN = 1.6448536269514722
"""P(above target) is read at the team mean's one-sided 95% bounds, this many posterior standard
deviations of the team mean below and above it (docs/methods.md#shrinkage); 0 = the plain posterior."""


def _erf(x: FloatArray) -> FloatArray:
    """Error function, vectorised (Abramowitz & Stegun 7.1.26, absolute error < 1.5e-7)."""
    z = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.asarray(np.sign(x) * (1.0 - poly * np.exp(-z * z)), dtype=np.float64)


def _phi_cdf(x: FloatArray) -> FloatArray:
    """Standard normal distribution function, vectorised (absolute error < 1e-7)."""
    return np.asarray(0.5 * (1.0 + _erf(np.asarray(x, dtype=np.float64) / math.sqrt(2.0))), dtype=np.float64)


def _phi_pdf(x: FloatArray) -> FloatArray:
    return np.asarray(np.exp(-0.5 * np.asarray(x, dtype=np.float64) ** 2) / math.sqrt(2.0 * math.pi))


def _group_codes(labels: npt.ArrayLike | None, size: int) -> npt.NDArray[np.int64]:
    if labels is None:
        return np.zeros(size, dtype=np.int64)
    _, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    return np.asarray(codes.reshape(-1), dtype=np.int64)


def _posterior_on_grid(loglik: FloatArray) -> FloatArray:
    """Normalised posterior weights on a grid from log-likelihoods (uniform prior), row by row."""
    shifted = np.exp(loglik - loglik.max(axis=-1, keepdims=True))
    return np.asarray(shifted / shifted.sum(axis=-1, keepdims=True), dtype=np.float64)


def _between_team_prior(
    mu_hat: FloatArray, var_mu: FloatArray, team_country: npt.NDArray[np.int64], usable: npt.NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    """Prior mean and variance of each team's mean from its country's other teams (variance inf: flat).

    The teams' estimated means vary around the country mean with variance sigma^2 + V_g; sigma (the
    spread of true team means) gets a uniform prior on a grid and its restricted likelihood. A team's
    prior is N(mean of the *other* teams, E[sigma^2 | data] + Var(that mean)): one team cannot vouch for
    itself, and an uncertain sigma still counts. A country needs ``SHRINK_MIN_GROUP`` teams for this.
    """
    teams = mu_hat.size
    prior_mean, prior_var = np.zeros(teams), np.full(teams, np.inf)
    if teams == 0:
        return prior_mean, prior_var
    sigma = np.linspace(0.0, 0.6, TAU_POINTS)
    for c in range(int(team_country.max()) + 1):
        members = np.flatnonzero(usable & (team_country == c))
        if members.size < SHRINK_MIN_GROUP:
            continue
        y, v = mu_hat[members][:, None], var_mu[members][:, None]
        w = 1.0 / (v + sigma[None, :] ** 2)
        sw = w.sum(axis=0)
        m = (w * y).sum(axis=0) / sw
        loglik = 0.5 * np.log(w).sum(axis=0) - 0.5 * np.log(sw) - 0.5 * (w * (y - m) ** 2).sum(axis=0)
        sigma2 = float(_posterior_on_grid(loglik) @ sigma**2)
        weights = 1.0 / (var_mu[members] + sigma2)
        others_w = weights.sum() - weights
        others_sum = (weights * mu_hat[members]).sum() - weights * mu_hat[members]
        prior_mean[members] = others_sum / others_w
        prior_var[members] = sigma2 + 1.0 / others_w
    return prior_mean, prior_var


def shrink_normal(
    y: npt.ArrayLike,
    n: npt.ArrayLike,
    per_answer_var: npt.ArrayLike,
    teams: npt.ArrayLike | None = None,
    countries: npt.ArrayLike | None = None,
    target: float | None = None,
    *,
    bounds: tuple[float, float] = (-1.0, 1.0),
    tau_max: float = 0.6,
    min_group: int = SHRINK_MIN_GROUP,
    team_mean_margin: float = TEAM_MEAN_MARGIN,
) -> Shrunk:
    """Hierarchical normal model with the between-agent variance integrated out (see ``shrink_rtf``).

    ``y`` is each agent's raw mean on the proportion scale, ``n`` its answers, ``per_answer_var`` the
    variance of one answer in the agent's *team* (the same for every agent of a team); ``target`` is
    in points (x100). An agent with n = 0 gets the team's predictive distribution.
    """
    y = np.asarray(y, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    team_var = np.asarray(per_answer_var, dtype=np.float64)
    size = total.size
    lo, hi = bounds
    codes = _group_codes(teams, size)
    groups = int(codes.max()) + 1 if size else 0
    tau = np.linspace(0.0, tau_max, TAU_POINTS)
    k_tau = tau.size
    tau2 = tau**2
    has = total > 0
    y = np.where(has, y, 0.0)
    safe_n = np.where(has, total, 1.0)

    # Sampling variance of an agent's mean, for each tau: the team's per-answer variance less its
    # between-agent part (law of total variance), over the agent's n. Never the agent's own variance.
    within = np.maximum(team_var[:, None] - tau2[None, :], np.maximum(0.05 * team_var[:, None], 1e-6))
    s2 = within / safe_n[:, None]
    w = np.where(has[:, None], 1.0 / (s2 + tau2[None, :]), 0.0)  # agents x tau

    flat = (codes[:, None] * k_tau + np.arange(k_tau)[None, :]).ravel()

    def by_group(values: FloatArray) -> FloatArray:
        summed = np.bincount(flat, weights=values.ravel(), minlength=groups * k_tau)
        return np.asarray(summed, dtype=np.float64).reshape(groups, k_tau)

    sw = by_group(w)
    swy = by_group(w * y[:, None])
    swyy = by_group(w * (y * y)[:, None])
    safe_sw = np.where(sw > 0, sw, 1.0)
    mu_hat = swy / safe_sw
    # Restricted (REML) log-likelihood of tau = the marginal likelihood with the team mean integrated
    # out under a flat prior: -1/2 [sum log(s2 + tau2) + log sum w + sum w (y - mu_hat)^2].
    log_w = np.where(has[:, None], np.log(np.where(has[:, None], w, 1.0)), 0.0)
    loglik = 0.5 * by_group(log_w) - 0.5 * np.log(safe_sw) - 0.5 * np.maximum(swyy - swy * mu_hat, 0.0)
    agents_in = np.bincount(codes, weights=has.astype(np.float64), minlength=groups)

    # Teams with too few agents take tau's likelihood from their country's teams (each team keeping
    # its own mean, so the teams' likelihoods add up), failing that from every team.
    team_country = np.zeros(groups, dtype=np.int64)
    if countries is not None and size:
        country_codes = _group_codes(countries, size)
        width = int(country_codes.max()) + 1
        pairs = np.bincount(codes * width + country_codes, minlength=groups * width).reshape(groups, width)
        team_country = pairs.argmax(axis=1)  # the country of most of the team's agents
    n_countries = int(team_country.max()) + 1 if groups else 0
    informative = agents_in >= 2  # one agent alone says nothing about the spread between agents
    country_ll = np.zeros((n_countries, k_tau))
    np.add.at(country_ll, team_country[informative], loglik[informative])
    country_df = np.bincount(
        team_country, weights=np.where(informative, agents_in - 1.0, 0.0), minlength=n_countries
    )
    all_ll = loglik[informative].sum(axis=0) if informative.any() else np.zeros(k_tau)
    use_team = agents_in >= min_group
    use_country = ~use_team & (country_df[team_country] >= min_group - 1)
    group_ll = np.where(
        use_team[:, None], loglik, np.where(use_country[:, None], country_ll[team_country], all_ll[None, :])
    )
    source = np.where(use_team, "team", np.where(use_country, "country", "all"))
    post_tau = _posterior_on_grid(group_ll)  # uniform prior on tau

    # The team mean: flat prior, or, in a country with enough teams, a normal prior around the mean of
    # the country's other teams (three levels: agent, team, country).
    tau_index = np.clip(np.rint(post_tau @ np.arange(k_tau)).astype(np.int64), 0, k_tau - 1)
    rows = np.arange(groups)
    mu_at = mu_hat[rows, tau_index]
    var_at = 1.0 / safe_sw[rows, tau_index]
    prior_mean_g, team_prior_var = _between_team_prior(mu_at, var_at, team_country, sw[rows, tau_index] > 0)
    prior_precision = np.where(
        np.isfinite(team_prior_var), 1.0 / np.where(np.isfinite(team_prior_var), team_prior_var, 1.0), 0.0
    )
    precision = sw + prior_precision[:, None]
    overall = float(y[has].mean()) if has.any() else 0.5 * (lo + hi)
    safe_precision = np.where(precision > 0, precision, 1.0)
    mu_g = np.where(
        precision > 0, (swy + (prior_precision * prior_mean_g)[:, None]) / safe_precision, overall
    )
    var_mu_g = np.where(precision > 0, 1.0 / safe_precision, (hi - lo) ** 2)

    # Values of tau that no group finds credible (posterior < 1e-9 of the best) are dropped from the
    # mixture: with many answers tau is well known and a handful of grid points carry it all.
    credible = (post_tau >= 1e-9 * post_tau.max(axis=1, keepdims=True)).any(axis=0)
    mixing = post_tau[:, credible] / post_tau[:, credible].sum(axis=1, keepdims=True)
    tau2_c, s2_c = tau2[credible], s2[:, credible]
    mu = mu_g[:, credible][codes]  # agents x credible tau
    var_mu = var_mu_g[:, credible][codes]
    weight_tau = mixing[codes]
    keep = np.where(has[:, None], tau2_c[None, :] / (s2_c + tau2_c[None, :]), 0.0)  # 1 - B
    mean = mu + keep * (y[:, None] - mu)
    var = np.where(has[:, None], keep * s2_c, tau2_c[None, :]) + (1.0 - keep) ** 2 * var_mu
    sd = np.sqrt(np.maximum(var, 1e-12))
    # The true score lies in [lo, hi]: each normal of the mixture is truncated there and weighs by
    # the posterior of its tau times the mass it keeps.
    a, b = (lo - mean) / sd, (hi - mean) / sd
    cdf_a, cdf_b = _phi_cdf(a), _phi_cdf(b)
    mass = np.maximum(cdf_b - cdf_a, 1e-300)
    omega = weight_tau * mass
    omega /= omega.sum(axis=1, keepdims=True)
    pdf_a, pdf_b = _phi_pdf(a), _phi_pdf(b)
    ratio = (pdf_a - pdf_b) / mass
    comp_mean = np.clip(mean + sd * ratio, lo, hi)
    comp_var = var * np.maximum(1.0 + (a * pdf_a - b * pdf_b) / mass - ratio**2, 0.0)
    post_mean = (omega * comp_mean).sum(axis=1)
    post_sd = np.sqrt((omega * (comp_var + (comp_mean - post_mean[:, None]) ** 2)).sum(axis=1))

    def cdf(x: FloatArray, rows: npt.NDArray[np.int64] | slice = slice(None)) -> FloatArray:
        z = (x[:, None] - mean[rows]) / sd[rows]
        inside = np.clip((_phi_cdf(z) - cdf_a[rows]) / mass[rows], 0.0, 1.0)
        return np.asarray((omega[rows] * inside).sum(axis=1), dtype=np.float64)

    def density(x: FloatArray, rows: npt.NDArray[np.int64]) -> FloatArray:
        z = (x[:, None] - mean[rows]) / sd[rows]
        return np.asarray((omega[rows] * _phi_pdf(z) / (sd[rows] * mass[rows])).sum(axis=1), dtype=np.float64)

    def quantile(p: float) -> FloatArray:
        """Safeguarded Newton (Numerical Recipes' rtsafe) on the mixture's distribution function.

        The bracket starts at mean -/+ 6.3 sd, which holds the 2.5% and 97.5% quantiles of any
        distribution (Cantelli's inequality); a Newton step is taken only if it stays in the bracket
        and the previous one at least halved the error, else the bracket is halved. Only the agents
        not yet converged are recomputed.
        """
        reach = math.sqrt(1.0 / min(p, 1.0 - p) - 1.0) + 0.05
        left = np.clip(post_mean - reach * post_sd, lo, hi)
        right = np.clip(post_mean + reach * post_sd, lo, hi)
        x = np.clip(post_mean + (Z95 if p > 0.5 else -Z95) * post_sd, left, right)
        previous = np.full(size, np.inf)
        active = np.arange(size)
        for _ in range(60):
            if active.size == 0:
                break
            xa = x[active]
            f = cdf(xa, active) - p
            done = np.abs(f) < 1e-7  # the accuracy of the erf approximation itself
            la = np.where(f < 0, xa, left[active])
            ra = np.where(f < 0, right[active], xa)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                step = xa - f / density(xa, active)
            newton = np.isfinite(step) & (step > la) & (step < ra) & (np.abs(f) <= 0.5 * previous[active])
            moved = np.where(done, xa, np.where(newton, step, 0.5 * (la + ra)))
            x[active], left[active], right[active], previous[active] = moved, la, ra, np.abs(f)
            active = active[~done & (ra - la > 1e-7)]
        return x

    # The team mean the agent is pulled toward, on the same footing (truncated to [lo, hi], mixed over tau).
    sd_mu = np.sqrt(np.maximum(var_mu, 1e-12))
    a_mu, b_mu = (lo - mu) / sd_mu, (hi - mu) / sd_mu
    mass_mu = np.maximum(_phi_cdf(b_mu) - _phi_cdf(a_mu), 1e-300)
    mu_trunc = np.clip(mu + sd_mu * (_phi_pdf(a_mu) - _phi_pdf(b_mu)) / mass_mu, lo, hi)
    team_mean = (weight_tau * mu_trunc).sum(axis=1)
    low = np.minimum(quantile(0.025), post_mean)
    high = np.maximum(quantile(0.975), post_mean)
    above: FloatArray | None = None
    if target is not None:
        # P(above target) at the team mean's one-sided bounds, mu* -/+ margin * sd(mu*) for each tau,
        # the agent's posterior otherwise unchanged (docs/methods.md#shrinkage): the reported
        # probability is the one of the two, or 0.5 between them, that is closest to 0.5, so a month
        # where the team's estimated mean overshoots (or undershoots) does not carry its agents over
        # (or under) the target. margin = 0 gives the plain posterior probability.
        t = float(target) / 100.0
        if team_mean_margin > 0:

            def p_above_at(shift: float) -> FloatArray:
                centre = mean + (1.0 - keep) * shift * sd_mu
                ca, cb = _phi_cdf((lo - centre) / sd), _phi_cdf((hi - centre) / sd)
                mass_c = np.maximum(cb - ca, 1e-300)
                om = weight_tau * mass_c
                om /= om.sum(axis=1, keepdims=True)
                inside = np.clip((cb - _phi_cdf((t - centre) / sd)) / mass_c, 0.0, 1.0)
                return np.asarray((om * inside).sum(axis=1), dtype=np.float64)

            p_low, p_high = p_above_at(-team_mean_margin), p_above_at(team_mean_margin)
            above = np.clip(np.maximum(np.minimum(p_high, 0.5), p_low), 0.0, 1.0)
        else:
            above = np.clip(1.0 - cdf(np.full(size, t)), 0.0, 1.0)
    return Shrunk(
        value=post_mean * 100.0,
        ci_low=low * 100.0,
        ci_high=high * 100.0,
        sd=post_sd * 100.0,
        p_above_target=above,
        prior_mean=team_mean * 100.0,
        tau2=(post_tau @ tau2)[codes],
        weight=(weight_tau * keep).sum(axis=1),
        tau_source=source[codes],
    )


def shrink_rtf(
    promoters: npt.ArrayLike,
    detractors: npt.ArrayLike,
    n: npt.ArrayLike,
    teams: npt.ArrayLike | None = None,
    target: float | None = None,
    *,
    countries: npt.ArrayLike | None = None,
    min_group: int = SHRINK_MIN_GROUP,
    team_mean_margin: float = TEAM_MEAN_MARGIN,
) -> Shrunk:
    """Shrink each agent's RTF toward its team's mean so that agents with few answers are not ranked on noise.

    Hierarchical normal model on the proportion scale (docs/methods.md#shrinkage): agent i's raw
    y_i = (P_i - D_i) / n_i ~ N(theta_i, s_i^2) with s_i^2 = (v_team - tau^2) / n_i, where v_team is
    the variance of one answer scored +1/0/-1 in the agent's *team* (never the agent's own, which is 0
    for a unanimous agent); theta_i ~ N(mu_team, tau^2). The team mean has a flat prior and is
    integrated out; tau has a uniform prior on a grid of ``TAU_POINTS`` values in [0, 0.6] and its
    posterior is the restricted (REML) likelihood, so the uncertainty of both goes into each agent's
    posterior, a mixture of normals truncated to [-1, 1]. Teams with fewer than ``min_group`` agents
    with answers use the likelihood of tau of their country's teams (``countries``: one label per agent,
    the team's country is its agents' most frequent), failing that of all teams.
    ``p_above_target`` = P(true RTF > target | data) read with the team mean at its one-sided 95%
    bounds (``team_mean_margin`` posterior sds below and above), the reading closest to 0.5 (0.5 if
    they straddle it): never more decided than the plain posterior, which ``team_mean_margin=0`` gives.
    """
    p_count = np.asarray(promoters, dtype=np.float64)
    d_count = np.asarray(detractors, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    codes = _group_codes(teams, total.size)
    groups = int(codes.max()) + 1 if total.size else 0
    team_n = np.bincount(codes, weights=total, minlength=groups)
    # The team's answer distribution (+1 pseudo-answer per category so a unanimous team is not certain).
    adjusted = team_n + 3.0 * RTF_PSEUDO
    team_p = (np.bincount(codes, weights=p_count, minlength=groups) + RTF_PSEUDO) / adjusted
    team_d = (np.bincount(codes, weights=d_count, minlength=groups) + RTF_PSEUDO) / adjusted
    team_var = team_p + team_d - (team_p - team_d) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(total > 0, (p_count - d_count) / np.where(total > 0, total, 1.0), 0.0)
    return shrink_normal(
        y,
        total,
        team_var[codes],
        teams,
        countries,
        target,
        bounds=(-1.0, 1.0),
        tau_max=0.6,
        min_group=min_group,
        team_mean_margin=team_mean_margin,
    )


def shrink_excellence(
    top: npt.ArrayLike,
    n: npt.ArrayLike,
    teams: npt.ArrayLike | None = None,
    target: float | None = None,
    *,
    countries: npt.ArrayLike | None = None,
    min_group: int = SHRINK_MIN_GROUP,
    team_mean_margin: float = TEAM_MEAN_MARGIN,
) -> Shrunk:
    """The excellence rate shrunk toward the team the same way (binomial variance of the team's rate)."""
    k = np.asarray(top, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    codes = _group_codes(teams, total.size)
    groups = int(codes.max()) + 1 if total.size else 0
    team_n = np.bincount(codes, weights=total, minlength=groups)
    team_rate = (np.bincount(codes, weights=k, minlength=groups) + 0.5) / (team_n + 1.0)
    team_var = team_rate * (1.0 - team_rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = np.where(total > 0, k / np.where(total > 0, total, 1.0), 0.0)
    return shrink_normal(
        y,
        total,
        team_var[codes],
        teams,
        countries,
        target,
        bounds=(0.0, 1.0),
        tau_max=0.4,
        min_group=min_group,
        team_mean_margin=team_mean_margin,
    )
