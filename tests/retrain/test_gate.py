"""The validation gate's rules on constructed figures, and the adapter registry on disk."""

from __future__ import annotations

import errno
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from retrain.dataset import Dataset, Example
from retrain.errors import TrainingFailed, Unservable, VersionExists, failure_reason
from retrain.gate import Figures, GateConfig, GateSet, answered_right, decide, score
from retrain.registry import (
    check_servable,
    claim_folder,
    code_version,
    next_version,
    plot_loss_curve,
    write_manifest,
)

LIVE = Figures(
    val_loss=1.50,
    val_token_f1=0.40,
    val_key_fact_rate=0.50,
    liked_token_f1=0.60,
    questions=30,
)


def _candidate(**changes: object) -> Figures:
    base = {
        "val_loss": 1.20,
        "val_token_f1": 0.45,
        "val_key_fact_rate": 0.70,
        "liked_token_f1": 0.60,
        "corrected_right_rate": 1.0,
        "questions": 30,
    }
    return Figures(**{**base, **changes})  # type: ignore[arg-type]


def test_a_better_candidate_passes_and_says_what_was_checked() -> None:
    decision = decide(_candidate(), LIVE, 0.02)
    assert decision.passed
    assert len([c for c in decision.checks if c.startswith("ok")]) == 5
    assert "validation loss 1.2000 vs live 1.5000" in decision.summary()


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"val_loss": 1.90}, "validation loss 1.9000 vs live 1.5000 (margin 20%)"),
        ({"val_token_f1": 0.37}, "validation token-F1"),
        ({"val_key_fact_rate": 0.40}, "key-fact rate"),
        ({"liked_token_f1": 0.57}, "liked answers token-F1 0.570 vs live 0.600"),
        ({"corrected_right_rate": 0.5, "wrong_corrections": ["correction:3"]}, "wrong: correction:3"),
        ({"failures": 2}, "2 of 30 questions got no answer"),
    ],
)
def test_each_rule_can_reject(changes: dict[str, object], why: str) -> None:
    decision = decide(_candidate(**changes), LIVE, 0.02)
    assert not decision.passed
    assert len(decision.reasons) == 1 and why in decision.reasons[0]
    assert decision.summary().startswith("rejected: ")


def test_the_margin_tolerates_a_small_drop_and_no_more() -> None:
    assert decide(_candidate(liked_token_f1=0.585), LIVE, 0.02).passed  # 0.015 below
    assert not decide(_candidate(liked_token_f1=0.575), LIVE, 0.02).passed  # 0.025 below
    assert decide(_candidate(val_loss=1.52), LIVE, 0.02, loss_margin=0.02).passed  # loss: relative
    assert not decide(_candidate(val_loss=1.54), LIVE, 0.02, loss_margin=0.02).passed


def test_loss_guards_against_a_broken_adapter_and_lets_better_answers_pass() -> None:
    # the shape of bench/results/learning_seed2.json: loss up 10%, every generated measure far better
    learned = _candidate(val_loss=2.0025, val_token_f1=0.308, val_key_fact_rate=0.375, liked_token_f1=None)
    base = Figures(val_loss=1.818, val_token_f1=0.122, val_key_fact_rate=0.125, questions=24)
    assert decide(learned, base, 0.02).passed
    # a diverged adapter: loss up by a third, whatever else it scores
    diverged = decide(replace(learned, val_loss=2.45), base, 0.02)
    assert not diverged.passed and diverged.reasons[0].startswith("validation loss 2.4500")
    assert not decide(learned, base, 0.02, loss_margin=0.10).passed  # the margin is a setting
    assert not decide(replace(learned, val_loss=math.nan), base, 0.02).passed
    # the guard alone does not pass an adapter whose answers got worse
    worse = decide(replace(learned, val_loss=1.70, val_key_fact_rate=0.10), base, 0.02)
    assert not worse.passed and "key-fact rate" in worse.reasons[0]


def test_missing_figures_skip_their_check_but_nothing_at_all_is_rejected() -> None:
    no_liked = decide(_candidate(liked_token_f1=None), LIVE, 0.02)
    assert no_liked.passed and any(c.startswith("skipped: liked") for c in no_liked.checks)
    nothing = decide(Figures(), Figures(), 0.02)
    assert not nothing.passed and "nothing to validate" in nothing.reasons[0]


def test_corrections_need_all_answered_unless_configured() -> None:
    partly = _candidate(corrected_right_rate=0.8)
    assert not decide(partly, LIVE, 0.02).passed
    assert decide(partly, LIVE, 0.02, corrected_min_rate=0.75).passed


def test_the_gate_asks_each_corrected_question_once_not_its_grounded_twin() -> None:
    def example(example_id: str, kind: str, split: str = "train") -> Example:
        return Example(example_id, kind, [{"role": "user", "content": "Leave?"}], "27 days.", split=split)

    dataset = Dataset(
        [
            example("correction:1", "correction"),
            example("grounded:1", "grounded"),
            example("sample:v", "sample", "validation"),
        ]
    )
    gate_set = GateSet.from_dataset(dataset, GateConfig())
    assert [e.id for e in gate_set.corrections] == ["correction:1"]
    assert [e.id for e in gate_set.validation] == ["sample:v"]


def test_answered_right_uses_the_key_fact_then_numbers_then_overlap() -> None:
    assert answered_right("You get 27 days a year.", "27 days of leave.", "27 days")
    assert not answered_right("You get 26 days.", "27 days of leave.", "27 days")
    assert answered_right("It is 1,500 euros, paid in March.", "EUR 1500 in March", None)
    assert not answered_right("It is 1,200 euros.", "EUR 1500 in March", None)
    assert answered_right("Ask the IT helpdesk on Slack", "ask the IT helpdesk in Slack", None)
    assert not answered_right("I do not know", "ask the IT helpdesk in Slack", None)


# --- the registry ------------------------------------------------------------------------------


def _adapter(path: Path, **config: object) -> Path:
    path.mkdir(parents=True)
    settings = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj"], **config}
    (path / "adapter_config.json").write_text(json.dumps(settings))
    (path / "adapter_model.safetensors").write_bytes(b"weights")
    return path


def _ask(question: str, answer: str, kind: str = "sample") -> Example:
    return Example(
        id=f"{kind}:{question}", kind=kind, prompt=[{"role": "user", "content": question}], completion=answer
    )


def test_scores_from_literal_answers_and_what_the_live_model_is_asked() -> None:
    gate_set = GateSet(
        validation=[_ask("How many leave days?", "26 days a year."), _ask("Who approves?", "Your manager.")],
        corrections=[_ask("When is Larkspur Day?", "The third Friday of September.", "correction")],
        liked=[_ask("Which VPN?", "Use Tunnelbear.", "liked")],
    )
    facts = {"how many leave days": "26 days"}
    answers = {
        "sample:How many leave days?": "You get 26 days.",
        "sample:Who approves?": None,  # the server failed on it
        "correction:When is Larkspur Day?": "It is the third Friday of September.",
        "liked:Which VPN?": "Use Tunnelbear.",
    }
    figures = score(answers, gate_set, facts, val_loss=1.25)
    assert (figures.questions, figures.failures, figures.val_loss) == (4, 1, 1.25)
    assert figures.val_key_fact_rate == 1.0 and figures.corrected_right_rate == 1.0
    assert figures.liked_token_f1 == 1.0 and figures.wrong_corrections == []
    wrong = score({**answers, "correction:When is Larkspur Day?": "In May."}, gate_set, facts)
    assert wrong.corrected_right_rate == 0.0 and wrong.wrong_corrections == [
        "correction:When is Larkspur Day?"
    ]
    # the live model answered the corrected questions wrongly already: it is not asked them again
    live = gate_set.for_live()
    assert live.corrections == [] and {e.id for e in live.examples()} == {
        "sample:How many leave days?",
        "sample:Who approves?",
        "liked:Which VPN?",
    }


def test_versions_count_up_past_sql_and_disk_and_are_never_reused(tmp_path: Path) -> None:
    assert next_version(tmp_path / "none", "kb") == "kb-v1"
    (tmp_path / "kb-v2").mkdir()
    (tmp_path / "kb-v5.work").mkdir()  # a failed run's scratch folder still takes its number
    (tmp_path / "other-v9").mkdir()
    assert next_version(tmp_path, "kb", ["kb-v3", "kbx-v7"]) == "kb-v6"
    claim_folder(tmp_path, "kb-v6").mkdir()
    with pytest.raises(VersionExists, match="never overwritten"):
        claim_folder(tmp_path, "kb-v6")


def test_only_what_vllm_serves_is_registered(tmp_path: Path) -> None:
    assert check_servable(_adapter(tmp_path / "ok"), max_rank=16)["r"] == 8
    with pytest.raises(Unservable, match="rank 32 is above the server's limit of 16"):
        check_servable(_adapter(tmp_path / "big", r=32), max_rank=16)
    with pytest.raises(Unservable, match=r"saves whole modules \(lm_head\)"):
        check_servable(_adapter(tmp_path / "mts", modules_to_save=["lm_head"]), max_rank=16)
    with pytest.raises(Unservable, match="DoRA"):
        check_servable(_adapter(tmp_path / "dora", use_dora=True), max_rank=16)
    with pytest.raises(Unservable, match=r"no adapter_config\.json"):
        check_servable(tmp_path, max_rank=16)


def test_manifest_and_loss_curve_are_written(tmp_path: Path) -> None:
    history = [{"step": s, "loss": 2.0 / s} for s in range(1, 6)] + [{"step": 5, "eval_loss": 0.9}]
    png = plot_loss_curve(history, tmp_path / "loss_curve.png", title="kb-v1")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_loss_curve([{"step": 1, "train_runtime": 3.0}], tmp_path / "none.png", title="x") is None
    manifest = write_manifest(tmp_path, {"name": "kb-v1", "code_version": code_version()})
    data = json.loads(manifest.read_text())
    assert data["name"] == "kb-v1" and data["code_version"].startswith(("git:", "package:"))


def test_failure_reasons_are_actionable() -> None:
    full = OSError(errno.ENOSPC, "No space left on device", "/data/adapters/kb-v3")
    assert failure_reason(full).startswith("The disk is full (/data/adapters/kb-v3)")
    nan = "The loss became nan at step 2."
    assert failure_reason(TrainingFailed(nan)) == nan
    assert "Unexpected error (KeyError" in failure_reason(KeyError("x"))
