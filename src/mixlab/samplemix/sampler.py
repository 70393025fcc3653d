"""SampleMix weights and per-document counts under a token budget (pure numpy, vectorised).

    p = sampling_weights(quality, diversity, alpha=0.8)                 # [n] in [0, 1]
    counts = budgeted_counts(p, lengths, budget=1e9, rng=np.random.default_rng(0), max_repeats=4)

Method (METHODS.md §2.3-2.4; the forms are our reconstruction, each an option):
- p(x) = α·d(x) + (1 − α)·q(x), q and d normalised to [0, 1] over the pool (min-max or rank).
- r(x) = T·p(x) / Σ_y p(y)·len(y);  c(x) = ⌊r(x)⌋ + Bernoulli(r(x) − ⌊r(x)⌋), so E[Σ c·len] = T.
- With a repeat cap R, r(x) = min(s·p(x), R) with the scale s chosen so Σ r·len = T still holds (the tokens
  the cap removes go to the uncapped documents); when even R copies of every document with p > 0 fall short
  of T the budget is infeasible (BadInput).
- Domain constraints [our hybrid of BiMix and SampleMix]: either target domain proportions (e.g. a BiMix
  mixture), or min/max shares that clamp SampleMix's own domain shares (free domains rescaled
  proportionally); SampleMix then chooses the documents inside each domain with its domain's budget.
- Rounding: `budgeted_counts` rounds each document independently (E[Σ c·len] = T). `domain_counts` (what
  `mixlab sample` uses) does not: independent rounding misses a small domain budget by about one document
  (a 2.5k-token budget over 3k-token documents often draws none), so per domain the fractional copies are
  placed to land its tokens within `BUDGET_TOLERANCE` of its budget (target share, clamped share or, without
  constraints, its expected tokens) where whole documents allow (`fitted_counts`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from mixlab.errors import BadInput

NORMALISATIONS = ("minmax", "rank")
# Counts and token totals are int64: with budget and pool each under 2^60 tokens, Σ c·len (at most the budget
# plus one copy of the pool from rounding up) stays far from 2^63.
MAX_TOKENS = 2**60
# [choice] each constrained domain lands within this fraction of its token budget where whole documents allow:
# then every realised share is within (1 + 0.004)/(1 - 0.004) - 1 = 0.8 % of its target, inside the 1 % that
# `mixlab sample` warns about (samplemix.sample.TARGET_TOLERANCE)
BUDGET_TOLERANCE = 0.004
FIT_ATTEMPTS = 16  # passes of `fitted_counts` before it settles for the closest total


def normalise(x: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Map scores [n] onto [0, 1] over the pool.

    `minmax`: (x − min)/(max − min), all ones when x is constant. `rank`: average rank (ties share it)
    scaled to [0, 1], robust to outliers. Returns float64 [n].
    """
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.copy()
    if not np.all(np.isfinite(x)):
        raise BadInput("scores contain NaN or infinite values")
    if method == "minmax":
        lo, hi = float(x.min()), float(x.max())
        return np.ones_like(x) if hi == lo else (x - lo) / (hi - lo)
    if method == "rank":
        if x.size == 1:
            return np.ones_like(x)
        from scipy.stats import rankdata

        return (rankdata(x, method="average") - 1.0) / (x.size - 1)
    raise BadInput(f"`normalisation` {method}: expected one of {', '.join(NORMALISATIONS)}")


def check_weight_options(alpha: float, normalisation: str) -> None:
    """Raise BadInput unless α is in [0, 1] and the normalisation is one of `NORMALISATIONS`."""
    if not 0.0 <= alpha <= 1.0:
        raise BadInput(f"`alpha` {alpha}: must be in [0, 1] (0 = quality only, 1 = diversity only)")
    if normalisation not in NORMALISATIONS:
        raise BadInput(f"`normalisation` {normalisation}: expected one of {', '.join(NORMALISATIONS)}")


def sampling_weights(
    quality: np.ndarray, diversity: np.ndarray, alpha: float = 0.8, normalisation: str = "minmax"
) -> np.ndarray:
    """p(x) = α·norm(d(x)) + (1 − α)·norm(q(x)); quality, diversity [n] in any units → p [n] in [0, 1]."""
    check_weight_options(alpha, normalisation)
    return alpha * normalise(diversity, normalisation) + (1.0 - alpha) * normalise(quality, normalisation)


def _check_pool(
    p: np.ndarray, lengths: np.ndarray, budget: float, max_repeats: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(p, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.float64)
    if p.shape != lengths.shape or p.ndim != 1:
        raise BadInput(f"weights {p.shape} and lengths {lengths.shape} must be 1-D of the same length")
    if not np.all(np.isfinite(p)) or (p.size and p.min() < 0):
        raise BadInput("sampling weights must be finite and non-negative")
    if lengths.size and (lengths.min() < 0 or not np.all(np.isfinite(lengths))):
        raise BadInput("document lengths (tokens) must be finite and non-negative")
    if lengths.sum() > MAX_TOKENS:
        raise BadInput(f"the pool holds {lengths.sum():.3g} tokens, more than the 2^60 counts can carry")
    if not np.isfinite(budget) or budget <= 0:
        raise BadInput(f"`budget` {budget}: must be a positive number of tokens")
    if budget > MAX_TOKENS:
        raise BadInput(f"`budget` {budget:.3g}: more than 2^60 ({MAX_TOKENS:.3g}) tokens")
    if max_repeats is not None and max_repeats < 1:
        raise BadInput(f"`max_repeats` {max_repeats}: must be at least 1")
    return p, lengths


def expected_rates(
    p: np.ndarray, lengths: np.ndarray, budget: float, max_repeats: int | None = None
) -> np.ndarray:
    """Expected copies r(x) [n] (float64) with Σ r·len = budget, capped at `max_repeats` per document.

    Without a cap r = T·p/Σ p·len. With a cap R the scale s of r = min(s·p, R) solves the piecewise-linear
    equation Σ len·min(s·p, R) = T (water-filling; exact up to float rounding).
    """
    p, lengths = _check_pool(p, lengths, budget, max_repeats)
    top = p.max(initial=0.0)
    # r is invariant to the scale of p; scaling by the largest keeps tiny (subnormal) weights from overflowing
    scaled = p / top if top > 0 else p
    mass = float(scaled @ lengths)
    if mass <= 0:
        raise BadInput("no document can be drawn: every weight (or every document length) is zero")
    rates = scaled * (budget / mass)
    if max_repeats is None or rates.max(initial=0.0) <= max_repeats:
        return rates
    drawable = p > 0
    capacity = float(max_repeats * lengths[drawable].sum())
    if capacity < budget * (1 - 1e-12):
        raise BadInput(
            f"`budget` {budget:.0f} cannot be met with `max_repeats` {max_repeats}: the "
            f"{int(drawable.sum())} documents with a non-zero weight hold {lengths[drawable].sum():.0f} tokens, "
            f"at most {capacity:.0f} tokens with {max_repeats} copies each (a larger cap, or none, lifts this)"
        )
    # Water-filling: f(s) = Σ len·min(s·p, R) is concave, increasing and piecewise linear. From s = T/M,
    # solving the current linear piece for T never overshoots s*, so a document over the cap stays over it and
    # the capped set only grows; the iteration reaches the exact s* once it stops changing (a handful of
    # rounds in practice). Each round rescales the free documents' weights by their own maximum: once the
    # large ones are capped, the rest can be so small (subnormal) that s itself would overflow.
    capped = np.zeros(p.shape, dtype=bool)
    for _ in range(1000):
        q = np.where(capped, 0.0, p)  # the free documents' weights (p = 0 stays 0)
        top = q.max()
        if top <= 0:
            rates = np.zeros_like(p)
            break
        q /= top
        free_mass = float(q @ lengths)
        remaining = max(budget - max_repeats * float(lengths @ capped), 0.0)
        rates = q * (remaining / free_mass) if free_mass > 0 else np.where(q > 0, float(max_repeats), 0.0)
        over = rates >= max_repeats
        if not over.any():
            break
        capped |= over
    rates[capped] = float(max_repeats)
    return rates


def budgeted_counts(
    p: np.ndarray,
    lengths: np.ndarray,
    budget: float,
    rng: np.random.Generator,
    max_repeats: int | None = None,
) -> np.ndarray:
    """Copies per document [n] (int64): c = ⌊r⌋ + Bernoulli(r − ⌊r⌋) with r from `expected_rates`.

    p [n] non-negative weights, lengths [n] tokens per document, budget in tokens. E[Σ c·len] = budget;
    c ≤ max_repeats when a cap is given; p = 0 gives c = 0. Deterministic given `rng`'s state.
    """
    return round_counts(expected_rates(p, lengths, budget, max_repeats), rng)


def round_counts(rates: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Probabilistic rounding of expected copies [n]: ⌊r⌋ + Bernoulli(r − ⌊r⌋), int64 [n]."""
    if rates.size and not rates.max() < MAX_TOKENS:  # also NaN: the int64 cast below would wrap around
        raise BadInput(
            f"{rates.max():.3g} expected copies of one document: more than int64 counts carry (a document"
            " of 0 tokens with a non-zero weight?)"
        )
    whole = np.floor(rates)
    counts = whole.astype(np.int64)
    counts += rng.random(rates.shape[0]) < (rates - whole)
    return counts


def fitted_counts(
    rates: np.ndarray,
    lengths: np.ndarray,
    budget: float,
    rng: np.random.Generator,
    tolerance: float,
    attempts: int = FIT_ATTEMPTS,
) -> np.ndarray:
    """Copies per document [n] (int64) whose tokens Σ c·len land within `tolerance`·budget of `budget` where
    whole documents allow, from expected copies `rates` [n] with Σ rates·len = budget.

    Each document gets ⌊r⌋ copies; the fractional parts decide who gets one more: the candidates are taken in
    an order drawn without replacement with probabilities ∝ r − ⌊r⌋ (Efraimidis-Spirakis keys), each one
    that still fits under budget + slack, until the total reaches budget − slack; a pass that stops short
    tries one swap (a taken document for an untaken one that closes the gap), else the shortest untaken one
    if overshooting by it comes closer. The first of `attempts` passes
    that lands within the slack is kept (else the closest): SampleMix's weights still choose the documents,
    but the total no longer varies by whole documents. c ≤ ⌈r⌉, so a cap the rates respect still holds."""
    rates = np.asarray(rates, dtype=np.float64)
    lengths = np.asarray(lengths, dtype=np.float64)
    whole = np.floor(rates)
    frac = rates - whole
    remainder = budget - float(whole @ lengths)
    slack = tolerance * budget
    candidates = np.flatnonzero(frac > 0)
    best, best_gap = np.zeros(0, dtype=np.int64), np.inf
    for _ in range(attempts):
        keys = np.log(rng.random(candidates.size)) / frac[candidates]  # larger key = earlier
        order = candidates[np.argsort(-keys, kind="stable")]
        taken = np.zeros(order.size, dtype=bool)
        # the leading run of documents that all fit is taken at once; the loop goes on from where one does not
        cum = np.cumsum(lengths[order])
        first = min(
            int(np.searchsorted(cum, remainder + slack, side="right")),
            int(np.searchsorted(cum, remainder - slack, side="left")) + 1,
        )
        taken[:first] = True
        total = float(cum[first - 1]) if first else 0.0
        for k in range(first, order.size):
            if total >= remainder - slack:
                break
            if total + lengths[order[k]] <= remainder + slack:
                taken[k] = True
                total += lengths[order[k]]
        gap = remainder - total
        chosen = order[taken]
        if gap > slack and not taken.all():
            spare = order[~taken]
            spare = spare[np.argsort(lengths[spare], kind="stable")]
            # one swap: drop a taken document a, take an untaken b with len_b - len_a within gap ± slack
            lo = np.searchsorted(lengths[spare], lengths[chosen] + gap - slack, side="left")
            hi = np.searchsorted(lengths[spare], lengths[chosen] + gap + slack, side="right")
            fits = np.flatnonzero(hi > lo)
            if fits.size:
                a, b = chosen[fits[0]], spare[lo[fits[0]]]
                chosen = np.concatenate([chosen[chosen != a], [b]])
                gap -= lengths[b] - lengths[a]
            elif abs(gap - lengths[spare[0]]) < gap:  # overshooting by the shortest one comes closer
                chosen = np.concatenate([chosen, spare[:1]])
                gap -= lengths[spare[0]]
        if abs(gap) < best_gap:
            best, best_gap = chosen, abs(gap)
        if best_gap <= slack:
            break
    counts = whole.astype(np.int64)
    counts[best] += 1
    return counts


def _share_map(
    shares: Mapping[str, float] | None, domains: Sequence[str], default: float, param: str
) -> np.ndarray:
    out = np.full(len(domains), default, dtype=np.float64)
    for name, value in (shares or {}).items():
        if name not in domains:
            raise BadInput(f"`{param}` {name}={value}: unknown domain (scores have {', '.join(domains)})")
        if not 0.0 <= float(value) <= 1.0:
            raise BadInput(f"`{param}` {name}={value}: a share must be in [0, 1]")
        out[list(domains).index(name)] = float(value)
    return out


def clamp_shares(shares: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Domain shares [m] clamped into [lo, hi] and summing to 1: clip(λ·shares, lo, hi) with λ by bisection,
    so the domains no bound touches keep their relative proportions."""
    shares, lo, hi = (np.asarray(a, dtype=np.float64) for a in (shares, lo, hi))
    if np.any(lo > hi + 1e-12):
        raise BadInput("a domain's `min_share` exceeds its `max_share`")
    if lo.sum() > 1 + 1e-9 or hi.sum() < 1 - 1e-9:
        raise BadInput(
            f"domain shares cannot sum to 1: min shares add up to {lo.sum():.4f}, max shares "
            f"(including repeat caps) to {hi.sum():.4f}"
        )
    lam_lo, lam_hi = 0.0, 1.0
    while np.clip(lam_hi * shares, lo, hi).sum() < 1 and lam_hi < 1e18:
        lam_hi *= 2
    for _ in range(200):
        mid = 0.5 * (lam_lo + lam_hi)
        if np.clip(mid * shares, lo, hi).sum() < 1:
            lam_lo = mid
        else:
            lam_hi = mid
    out = np.clip(lam_hi * shares, lo, hi)
    slack = 1.0 - out.sum()  # a domain with zero share can only move via its bounds; spread what is left
    if abs(slack) > 1e-9:
        room = (hi - out) if slack > 0 else (out - lo)
        out += slack * room / room.sum()
    return out


def domain_counts(
    p: np.ndarray,
    lengths: np.ndarray,
    domain_codes: np.ndarray,
    domains: Sequence[str],
    budget: float,
    rng: np.random.Generator,
    max_repeats: int | None = None,
    target: Mapping[str, float] | None = None,
    min_share: Mapping[str, float] | None = None,
    max_share: Mapping[str, float] | None = None,
) -> tuple[np.ndarray, dict[str, float]]:
    """Counts [n] (int64) with optional domain constraints, and the domain budgets used (tokens).

    `domain_codes` [n] index into `domains`. Without constraints the rates are `expected_rates` over the whole
    pool and each domain's counts land on its expected tokens (the budgets reported) by `fitted_counts`. With `target` proportions each domain gets
    budget·target[d] tokens; with min/max shares SampleMix's own shares Σ_{x∈d} p·len / Σ p·len are
    clamped (`clamp_shares`, capped further by what `max_repeats` allows). Inside each domain the rates come
    from `expected_rates` on that domain's documents and the counts from `fitted_counts`, so the domain's
    tokens land within BUDGET_TOLERANCE of its budget where whole documents allow.
    """
    p, lengths = _check_pool(p, lengths, budget, max_repeats)
    codes = np.asarray(domain_codes, dtype=np.int64)
    m = len(domains)
    mass_by_domain = np.bincount(codes, weights=p * lengths, minlength=m)
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(m + 1))
    if target is None and not min_share and not max_share:
        rates = expected_rates(p, lengths, budget, max_repeats)
        expected = np.bincount(codes, weights=rates * lengths, minlength=m)
        counts = np.zeros(p.shape[0], dtype=np.int64)
        for j in range(m):
            idx = order[bounds[j] : bounds[j + 1]]
            counts[idx] = fitted_counts(rates[idx], lengths[idx], float(expected[j]), rng, BUDGET_TOLERANCE)
        return counts, dict(zip(domains, expected.tolist(), strict=True))
    if target is not None:
        if min_share or max_share:
            raise BadInput("`target` and `min_share`/`max_share` are alternatives; give one")
        unknown = [d for d in target if d not in domains]
        if unknown:
            raise BadInput(
                f"`target`: unknown domain(s) {', '.join(unknown)} (scores have {', '.join(domains)})"
            )
        shares = np.array([float(target.get(d, 0.0)) for d in domains])
        shares = shares / shares.sum()
    else:
        lo = _share_map(min_share, domains, 0.0, "min_share")
        hi = _share_map(max_share, domains, 1.0, "max_share")
        if max_repeats is not None:
            drawable_tokens = np.bincount(codes, weights=lengths * (p > 0), minlength=m)
            hi = np.minimum(hi, max_repeats * drawable_tokens / budget)
        shares = clamp_shares(mass_by_domain / mass_by_domain.sum(), lo, hi)
    counts = np.zeros(p.shape[0], dtype=np.int64)
    budgets: dict[str, float] = {}
    for j, domain in enumerate(domains):
        budgets[domain] = float(shares[j] * budget)
        if budgets[domain] <= 0:
            continue
        idx = order[bounds[j] : bounds[j + 1]]
        if mass_by_domain[j] <= 0:
            raise BadInput(
                f"domain '{domain}' must receive {shares[j]:.4f} of the budget but none of its documents has a"
                " non-zero weight"
            )
        try:
            rates = expected_rates(p[idx], lengths[idx], budgets[domain], max_repeats)
        except BadInput as exc:
            raise BadInput(f"domain '{domain}' (budget {budgets[domain]:.0f} tokens): {exc}") from None
        counts[idx] = fitted_counts(rates, lengths[idx], budgets[domain], rng, BUDGET_TOLERANCE)
    return counts, budgets


__all__ = [
    "BUDGET_TOLERANCE",
    "MAX_TOKENS",
    "NORMALISATIONS",
    "budgeted_counts",
    "check_weight_options",
    "clamp_shares",
    "domain_counts",
    "expected_rates",
    "fitted_counts",
    "normalise",
    "round_counts",
    "sampling_weights",
]
