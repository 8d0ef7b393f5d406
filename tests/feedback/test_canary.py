"""The canary's decision rule on literal vote counts: roll back, promote, wait, too few votes, and
undecided after the last planned look; the arithmetic against known values."""

from __future__ import annotations

import pytest

from feedback.canary import Policy, Tally, decide, fisher_worse, look, wilson, worse_by_at_most

POLICY = Policy(min_votes=50, max_votes=500, looks=5, alpha=0.05, margin=0.08)


def test_the_looks_are_spread_from_the_minimum_to_the_maximum() -> None:
    assert POLICY.checkpoints() == [50, 162, 275, 388, 500]
    assert POLICY.alpha_per_look == pytest.approx(0.01)


def test_fisher_and_wilson_match_known_values() -> None:
    # scipy.stats.fisher_exact([[30, 20], [140, 60]], alternative="less") = 0.11853
    assert fisher_worse(Tally(30, 20), Tally(140, 60)) == pytest.approx(0.11853, abs=1e-5)
    low, high = wilson(7, 10)  # the textbook 7 of 10: 0.3968 to 0.8922
    assert (round(low, 4), round(high, 4)) == (0.3968, 0.8922)


def test_a_clearly_worse_candidate_is_rolled_back() -> None:
    verdict = decide(Tally(up=80, down=82), Tally(up=480, down=170), POLICY)  # 49% against 74%
    assert verdict.action == "rollback" and verdict.p_worse is not None and verdict.p_worse < 0.01
    assert "worse" in verdict.reason


def test_an_equal_candidate_with_enough_votes_is_promoted() -> None:
    verdict = decide(Tally(up=210, down=65), Tally(up=800, down=250), POLICY)  # 76% against 76%
    assert verdict.action == "promote"
    assert verdict.worse_by_at_most is not None and verdict.worse_by_at_most < POLICY.margin


def test_a_little_data_that_leans_worse_waits() -> None:
    assert decide(Tally(up=33, down=17), Tally(up=38, down=12), POLICY).action == "wait"  # 66% vs 76%


def test_too_few_votes_on_either_side_decide_nothing() -> None:
    assert decide(Tally(up=0, down=49), Tally(up=300, down=0), POLICY).action == "wait"
    assert "too few votes" in decide(Tally(up=60, down=0), Tally(up=0, down=10), POLICY).reason


def test_a_look_happens_only_when_the_votes_reach_it_and_the_last_is_undecided() -> None:
    assert look(Tally(30, 19), Tally(200, 60), POLICY, looks_done=0) == (None, 0)  # 49 < 50 votes
    verdict, done = look(Tally(38, 12), Tally(40, 10), POLICY, looks_done=0)
    assert verdict is not None and verdict.action == "wait" and done == 1
    assert look(Tally(38, 12), Tally(40, 10), POLICY, looks_done=1) == (None, 1)  # next at 162
    verdict, done = look(Tally(350, 150), Tally(380, 120), POLICY, looks_done=4)  # 70% vs 76%
    assert verdict is not None and verdict.action == "undecided" and done == 5
    assert "no decision after 5 looks" in verdict.reason
    assert look(Tally(350, 150), Tally(380, 120), POLICY, looks_done=5) == (None, 5)


def test_the_bound_shrinks_with_votes() -> None:
    few = worse_by_at_most(Tally(38, 12), Tally(38, 12), 0.98)
    many = worse_by_at_most(Tally(380, 120), Tally(380, 120), 0.98)
    assert few > many > 0
