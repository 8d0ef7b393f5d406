"""Whether a candidate adapter serving a share of questions is worse than the live one, from the 👍/👎
its answers got: the decision rule of a canary, pure arithmetic on vote counts.

Worse: a one-sided Fisher exact test (the candidate's 👍 count given both arms' totals). Exact, so it
holds with a handful of votes where a normal approximation does not, and needs no prior. Not worse:
the upper bound of live's rate minus the candidate's, by Newcombe's hybrid score interval (built from
the two Wilson intervals, which keep their coverage at small counts and near 0 or 1), is below the
margin. The votes are looked at a planned number of times (at candidate vote counts spread from
`min_votes` to `max_votes`), each look at alpha / looks (Bonferroni), so looking often does not
raise the chance of rolling back an equal candidate above alpha.

    policy = Policy()
    verdict, looks_done = look(Tally(up=40, down=22), Tally(up=190, down=60), policy, looks_done=0)
    verdict.action  # None (no look due), "rollback", "promote", "wait" or, after the last, "undecided"
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist

from feedback import queries
from feedback.db import Database
from feedback.models import Canary

ACTIONS = ("wait", "promote", "rollback", "undecided")


@dataclass(frozen=True)
class Tally:
    up: int
    down: int

    @property
    def votes(self) -> int:
        return self.up + self.down

    @property
    def rate(self) -> float | None:
        return self.up / self.votes if self.votes else None

    def interval(self, confidence: float = 0.95) -> tuple[float, float] | None:
        return wilson(self.up, self.votes, confidence) if self.votes else None


@dataclass(frozen=True)
class Policy:
    min_votes: int = 50  # CANARY_MIN_VOTES: votes on each side before the first look
    max_votes: int = 500  # CANARY_MAX_VOTES: the candidate's votes at the last look
    looks: int = 5  # planned looks, evenly spaced from min_votes to max_votes
    alpha: float = 0.05  # the chance of rolling back an equal candidate, over all looks
    margin: float = 0.08  # CANARY_MARGIN: "not worse" means at most this much below live's 👍 rate

    def checkpoints(self) -> list[int]:
        """The candidate vote counts at which the votes are looked at."""
        if self.looks <= 1 or self.max_votes <= self.min_votes:
            return [max(self.min_votes, self.max_votes)]
        step = (self.max_votes - self.min_votes) / (self.looks - 1)
        return [round(self.min_votes + i * step) for i in range(self.looks)]

    @property
    def alpha_per_look(self) -> float:
        return self.alpha / len(self.checkpoints())


@dataclass(frozen=True)
class Verdict:
    action: str  # one of ACTIONS
    reason: str
    p_worse: float | None = None  # the Fisher test's one-sided p-value
    worse_by_at_most: float | None = None  # upper bound of live's rate minus the candidate's
    figures: dict[str, object] = field(default_factory=dict)


def wilson(up: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a proportion `up` / `n` (n > 0)."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = up / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _log_choose(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_worse(candidate: Tally, live: Tally) -> float:
    """One-sided Fisher exact p-value that the candidate's 👍 rate is below live's: the chance of
    the candidate getting at most its 👍 count, were 👍 spread at random over both arms' votes."""
    total, ups, drawn = candidate.votes + live.votes, candidate.up + live.up, candidate.votes
    low, high = max(0, drawn - (total - ups)), min(drawn, ups)
    denominator = _log_choose(total, drawn)
    terms = [
        _log_choose(ups, k) + _log_choose(total - ups, drawn - k) - denominator
        for k in range(low, min(candidate.up, high) + 1)
    ]
    if not terms:
        return 0.0
    top = max(terms)
    return min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms))


def worse_by_at_most(candidate: Tally, live: Tally, confidence: float) -> float:
    """Newcombe's upper bound of live's 👍 rate minus the candidate's (two-sided `confidence` on
    each Wilson interval, so the bound is one-sided at (1 + confidence) / 2)."""
    assert candidate.votes and live.votes
    p_c, p_l = candidate.up / candidate.votes, live.up / live.votes
    c_low, _ = wilson(candidate.up, candidate.votes, confidence)
    _, l_high = wilson(live.up, live.votes, confidence)
    return (p_l - p_c) + math.sqrt((l_high - p_l) ** 2 + (p_c - c_low) ** 2)


def decide(candidate: Tally, live: Tally, policy: Policy) -> Verdict:
    """One look at the votes: roll back if the candidate is worse with confidence, promote if it is
    not worse by more than the margin with confidence, otherwise wait."""
    if min(candidate.votes, live.votes) < policy.min_votes:
        return Verdict("wait", f"too few votes yet (at least {policy.min_votes} on each side)")
    alpha = policy.alpha_per_look
    p = fisher_worse(candidate, live)
    bound = worse_by_at_most(candidate, live, 1 - 2 * alpha)
    rates = (
        f"👍 {candidate.up}/{candidate.votes} ({candidate.rate:.0%}) against live's "
        f"{live.up}/{live.votes} ({live.rate:.0%})"
    )
    if p < alpha:
        return Verdict("rollback", f"worse: {rates}, p = {p:.4f} < {alpha:.4f}", p, bound)
    if bound < policy.margin:
        reason = f"not worse: {rates}; at most {max(bound, 0):.1%} below live (margin {policy.margin:.0%})"
        return Verdict("promote", reason, p, bound)
    return Verdict("wait", f"not yet clear: {rates}", p, bound)


def look(candidate: Tally, live: Tally, policy: Policy, *, looks_done: int) -> tuple[Verdict | None, int]:
    """The next planned look, if the votes have reached it: its verdict ("undecided" when the last
    look still waits) and how many looks are done. (None, looks_done) when none is due."""
    marks = policy.checkpoints()
    due = looks_done < len(marks) and candidate.votes >= marks[looks_done] and live.votes >= policy.min_votes
    if not due:
        return None, looks_done
    verdict = decide(candidate, live, policy)
    looks_done += 1
    if verdict.action == "wait" and looks_done == len(marks):
        reason = f"no decision after {looks_done} looks: {verdict.reason}"
        return Verdict("undecided", reason, verdict.p_worse, verdict.worse_by_at_most), looks_done
    return verdict, looks_done


@dataclass(frozen=True)
class Standing:
    """An open or finished canary with both sides' votes so far, for status lines and pages."""

    canary: Canary
    candidate: Tally
    live: Tally

    def summary(self) -> str:
        c = self.canary
        lines = [f"Canary #{c.id}: {c.candidate} on {c.share:.0%} of threads beside {c.live} ({c.status})."]
        for name, tally in ((c.candidate, self.candidate), (c.live, self.live)):
            interval = tally.interval()
            shown = (
                f"{tally.rate:.0%} 👍 (95% interval {interval[0]:.0%}–{interval[1]:.0%})"
                if interval and tally.rate is not None
                else "no votes yet"
            )
            lines.append(f"  {name}: {tally.up} 👍 / {tally.down} 👎, {shown}")
        if c.reason:
            lines.append(f"  {c.reason}")
        return "\n".join(lines)


def standing(database: Database, canary: Canary) -> Standing:
    with database.reader() as session:
        votes = queries.canary_votes(session, canary)
    return Standing(canary, Tally(*votes[canary.candidate]), Tally(*votes[canary.live]))


def current(database: Database) -> Standing | None:
    """The open canary, or else the latest one, with its votes; None when there never was one."""
    with database.reader() as session:
        canary = queries.open_canary(session) or queries.latest_canary(session)
    return None if canary is None else standing(database, canary)
