"""One retrain run end to end on the real SmolLM2 and the embedded engine: a few training steps,
the gate asking both models through the server, then promotion or discard, all recorded. Failures
injected mid-training (a full disk, a NaN loss) and a model server that is gone leave the live
adapter serving and the run recorded `failed` with its reason."""

from __future__ import annotations

import errno
import json
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import TrainerCallback

from feedback import queries, store
from feedback.db import Database
from feedback.models import RetrainRun
from model_server import replicas
from model_server.client import ModelClient
from retrain import promote
from retrain.dataset import Dataset, Example
from retrain.gate import GateConfig
from retrain.job import JobConfig, run_retrain
from retrain.train import TrainConfig
from tests.support.lora import make_lora
from tests.support.model_servers import free_port

pytestmark = pytest.mark.slow
SYSTEM = {"role": "system", "content": "Answer from the documents.\n\n[1] Annual leave\nStaff get 27 days."}


def _example(i: int, kind: str, split: str) -> Example:
    question = {"role": "user", "content": f"How many leave days do I get? ({kind} {i})"}
    answer = "Staff get 27 days of leave a year."
    return Example(
        id=f"{kind}:{split}:{i}", kind=kind, prompt=[SYSTEM, question], completion=answer, split=split
    )


def _dataset(train: int = 4) -> Dataset:
    examples = [_example(i, "sample", "train") for i in range(train)]
    examples += [_example(i, "sample", "validation") for i in range(2)]
    examples += [_example(0, "correction", "train"), _example(0, "liked", "train")]
    return Dataset(examples=examples, feedback_range={"first_answer_id": 1, "last_answer_id": 2})


@pytest.fixture
def live(database: Database, client: ModelClient, base_model_dir: Path, tmp_path: Path) -> str:
    """A live adapter, active in SQL and loaded; its version prefix is this test's own."""
    name = f"t{uuid.uuid4().hex[:6]}-v1"
    path = make_lora(base_model_dir, tmp_path / "adapters" / name, seed=1, b_scale=0.01)
    with database.writer() as session:
        store.register_adapter(session, name=name, path=str(path), base_model="smollm2", dataset_hash="old")
    promote.promote(database, client, name=name, actor="test")
    return name


def _config(base_model_dir: Path, tmp_path: Path, live: str, **gate: Any) -> JobConfig:
    return JobConfig(
        adapters_dir=tmp_path / "adapters",
        base_model_dir=base_model_dir,
        base_model="smollm2-135m-instruct",
        adapter_prefix=live.split("-v")[0],
        train=TrainConfig(max_steps=3, batch_size=2, learning_rate=1e-3),
        gate=GateConfig(max_tokens=12, **gate),
        progress=False,
    )


def _queue(database: Database) -> int:
    with database.writer() as session:
        run = store.queue_run(session, trigger="cli", requested_by="test")
    assert run.id is not None
    return run.id


def _run(database: Database, run_id: int) -> RetrainRun:
    with database.reader() as session:
        run = session.get(RetrainRun, run_id)
    assert run is not None
    return run


def _active(database: Database) -> str | None:
    with database.reader() as session:
        active = queries.active_adapter(session)
    return active.name if active else None


def test_with_a_canary_share_a_passing_candidate_opens_a_canary_beside_live(
    database: Database, client: ModelClient, live: str, base_model_dir: Path, tmp_path: Path
) -> None:
    config = replace(
        _config(base_model_dir, tmp_path, live, margin=1.0, corrected_min_rate=0.0), canary_share=0.3
    )
    run_id = _queue(database)
    outcome = run_retrain(config, database, client, run_id=run_id, dataset=_dataset)
    assert outcome.status == "canary", outcome.reason
    candidate = live.replace("-v1", "-v2")
    assert _active(database) == live and candidate in client.models()  # live keeps the rest
    with database.reader() as session:
        canary = queries.open_canary(session)
    assert canary is not None and (canary.candidate, canary.live, canary.share, canary.run_id) == (
        candidate,
        live,
        0.3,
        run_id,
    )
    assert _run(database, run_id).status == "canary"
    skipped = run_retrain(config, database, client, run_id=_queue(database), dataset=_dataset)
    assert skipped.status == "skipped" and "canary is still open" in (skipped.reason or "")


def test_a_passing_candidate_is_registered_and_promoted(
    database: Database, client: ModelClient, live: str, base_model_dir: Path, tmp_path: Path
) -> None:
    config = _config(base_model_dir, tmp_path, live, margin=1.0, corrected_min_rate=0.0)
    run_id = _queue(database)
    outcome = run_retrain(config, database, client, run_id=run_id, dataset=_dataset)

    assert outcome.status == "promoted", outcome.reason
    candidate = live.replace("-v1", "-v2")
    assert outcome.adapter == candidate and _active(database) == candidate
    assert {live, candidate} <= set(client.models())

    folder = tmp_path / "adapters" / candidate
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["parent"] == live and manifest["base_model"] == "smollm2-135m-instruct"
    assert manifest["dataset_hash"] == _dataset().hash
    assert manifest["feedback_range"]["last_answer_id"] == 2
    assert manifest["code_version"] and manifest["train_config"]["max_steps"] == 3
    assert manifest["metrics"]["steps"] == 3 and manifest["timings"]["train_s"] > 0
    assert manifest["gate"]["candidate"]["questions"] == 4
    assert outcome.loss_curve == folder / "loss_curve.png" and outcome.loss_curve.stat().st_size > 1000

    run = _run(database, run_id)
    assert run.status == "promoted" and run.candidate == candidate and run.error is None
    assert run.decision and run.decision.startswith("passed")
    figures = run.metrics
    assert figures["gate"]["live"]["model"] == live
    # the live model is not asked the corrected questions: only the candidate's answers to them count
    assert (
        figures["gate"]["live"]["questions"] == 3 and figures["gate"]["live"]["corrected_right_rate"] is None
    )
    assert figures["training"]["eval_loss"] is not None and figures["training"]["live_eval_loss"] is not None
    assert {"dataset_s", "train_s", "gate_s", "promote_s"} <= set(figures["timings"])
    assert not (tmp_path / "adapters" / f"{candidate}.work").exists()


def test_a_rejected_candidate_is_discarded_and_the_live_adapter_serves_on(
    database: Database, client: ModelClient, live: str, base_model_dir: Path, tmp_path: Path
) -> None:
    # a negative margin asks the candidate to beat live by more than F1 can: always rejected
    config = _config(base_model_dir, tmp_path, live, margin=-1.0)
    run_id = _queue(database)
    outcome = run_retrain(config, database, client, run_id=run_id, dataset=_dataset)

    assert outcome.status == "rejected" and outcome.reason and outcome.reason.startswith("rejected: ")
    assert _active(database) == live
    assert outcome.adapter is not None and outcome.adapter not in client.models()
    with database.reader() as session:
        candidate = queries.get_adapter(session, outcome.adapter)
    assert candidate is not None and candidate.status == "failed"
    run = _run(database, run_id)
    assert run.status == "rejected" and run.decision == outcome.reason
    assert run.metrics["gate"]["passed"] is False


class _DiskFullAt(TrainerCallback):
    def __init__(self, step: int, path: Path) -> None:
        self.step, self.path = step, path

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if state.global_step >= self.step:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))


class _PoisonAt(TrainerCallback):
    """Turn a LoRA matrix into NaNs after `step`: the next step's loss is NaN."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if state.global_step == self.step:
            with torch.no_grad():
                next(p for n, p in model.named_parameters() if "lora_A" in n).fill_(float("nan"))


@pytest.mark.parametrize(
    ("make_callback", "why"),
    [
        (lambda tmp: _DiskFullAt(1, tmp / "adapters"), "The disk is full"),
        (lambda tmp: _PoisonAt(1), "became nan at step 2"),
    ],
    ids=["disk-full", "nan-loss"],
)
def test_a_failure_mid_training_leaves_the_live_adapter_active(
    database: Database,
    client: ModelClient,
    live: str,
    base_model_dir: Path,
    tmp_path: Path,
    make_callback: Any,
    why: str,
) -> None:
    config = _config(base_model_dir, tmp_path, live)
    run_id = _queue(database)
    outcome = run_retrain(
        config, database, client, run_id=run_id, dataset=_dataset, callbacks=[make_callback(tmp_path)]
    )
    assert outcome.status == "failed" and outcome.reason and why in outcome.reason
    assert _active(database) == live and live in client.models()
    run = _run(database, run_id)
    assert run.status == "failed" and run.error == outcome.reason and run.finished_at is not None
    # nothing half-made is left: no folder, no registered version
    assert sorted(p.name for p in (tmp_path / "adapters").iterdir()) == [live]
    with database.reader() as session:
        assert [a.name for a in queries.list_adapters(session)] == [live]
    # the slot is free again: the next run can start
    after = run_retrain(config, database, client, run_id=_queue(database), dataset=lambda: Dataset([]))
    assert after.status == "skipped"


def test_a_model_server_that_is_gone_fails_the_run_before_training(
    database: Database, base_model_dir: Path, tmp_path: Path
) -> None:
    config = _config(base_model_dir, tmp_path, "kb-v1")
    run_id = _queue(database)
    built: list[int] = []

    def dataset() -> Dataset:
        built.append(1)
        return _dataset()

    with ModelClient(f"http://127.0.0.1:{free_port()}", retries=0) as gone:
        outcome = run_retrain(config, database, gone, run_id=run_id, dataset=dataset)
    assert outcome.status == "failed" and outcome.reason and "is not answering" in outcome.reason
    assert not built and not (tmp_path / "adapters").exists()
    assert _run(database, run_id).error == outcome.reason


def test_nothing_new_is_skipped_and_recorded(
    database: Database, client: ModelClient, live: str, base_model_dir: Path, tmp_path: Path
) -> None:
    config = _config(base_model_dir, tmp_path, live)
    empty = run_retrain(config, database, client, run_id=_queue(database), dataset=lambda: Dataset([]))
    assert empty.status == "skipped" and empty.reason == "There are no training examples yet."

    with database.writer() as session:  # the live adapter was trained on exactly this dataset
        adapter = queries.get_adapter(session, live)
        assert adapter is not None
        adapter.dataset_hash = _dataset().hash
        session.add(adapter)
        session.commit()
    run_id = _queue(database)
    same = run_retrain(config, database, client, run_id=run_id, dataset=_dataset)
    assert same.status == "skipped" and same.reason and "Nothing new to learn" in same.reason
    assert _run(database, run_id).status == "skipped" and _active(database) == live


def test_a_replica_that_is_gone_fails_the_run_naming_it(
    database: Database, base_model_dir: Path, tmp_path: Path, engine_url: str
) -> None:
    config = _config(base_model_dir, tmp_path, "kb-v1")
    run_id = _queue(database)
    gone = f"http://127.0.0.1:{free_port()}"
    with replicas.connect([engine_url, gone], retries=0) as both:
        outcome = run_retrain(config, database, both, run_id=run_id, dataset=_dataset)
    assert outcome.status == "failed" and outcome.reason
    assert f"{gone} is not answering" in outcome.reason and engine_url not in outcome.reason
