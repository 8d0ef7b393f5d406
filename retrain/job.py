"""One retrain run: dataset -> train -> gate -> promote, canary or discard, recorded on its RetrainRun.

    run = store.queue_run(session, trigger="admin", requested_by="U123")
    outcome = run_retrain(config, database, client, run_id=run.id, dataset=build)

Parameters of `run_retrain`:
  - `config: JobConfig` – where adapters live, the base model, the adapter name prefix, the
    server's limits, and the training and gate settings (`chatbot.retraining.job_config(settings)`
    builds it from the settings);
  - `database: Database` – the store; the run must be queued there (`feedback.store.queue_run`);
  - `client: ModelClient` – the model server the bot uses: the candidate is loaded there under its
    new name for the gate and, if it passes, made active there;
  - `run_id` – the queued run; `start_run` (refused while another run is running, anywhere:
    `feedback.errors.RunInProgress` propagates and the run stays queued) and `finish_run` are
    called here;
  - `dataset` – builds the training data (`chatbot.retraining.training_data`); called
    after the run started so it sees all feedback up to now;
  - `key_facts` – question text (normalised, `gate.question_key`) -> key fact, for the key-fact
    rate and for "answered right" (the sample question set's facts);
  - `callbacks` – extra transformers TrainerCallbacks (progress reporting, tests injecting a failure).

Whatever goes wrong (an exception, a NaN loss, a full disk, the model server gone) the run is
recorded `failed` with a reason an admin can act on, the candidate is unloaded and marked failed,
and the active adapter keeps serving: SQL's pointer only moves in `promote.promote`, last (with a
canary share, a passing candidate opens a canary instead: `retrain.rollout`).
"""

from __future__ import annotations

import gc
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from feedback import queries, store
from feedback.db import Database
from feedback.models import AdapterVersion
from model_server import replicas
from model_server.client import ModelClient
from model_server.errors import ModelServerError, ModelServerUnavailable
from retrain import gate, promote, registry, rollout
from retrain.budget import pick_training
from retrain.dataset import Dataset
from retrain.errors import failure_reason
from retrain.heartbeat import beating
from retrain.train import TrainConfig, TrainResult, make_trainer, reference_loss, run_trainer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobConfig:
    adapters_dir: Path  # DATA_DIR/adapters
    base_model_dir: Path  # the prepared base model both the trainer and the server load
    base_model: str  # what the manifest and SQL record as the base (BASE_MODEL or the bundled one)
    adapter_prefix: str = "kb"  # ADAPTER_NAME
    served_model_name: str = "base"  # SERVED_MODEL_NAME: what "no adapter" is called on the server
    max_lora_rank: int = 16  # MAX_LORA_RANK
    keep_loaded: int = 2  # KEEP_LOADED_ADAPTERS
    canary_share: float = 0.0  # CANARY_SHARE: a passing candidate first serves this share (0: all at once)
    actor: str = "retrain"  # recorded as who promoted a passing candidate
    train: TrainConfig = field(default_factory=TrainConfig)
    max_examples: int = 0  # RETRAIN_MAX_EXAMPLES: training examples per run, feedback first (0: all)
    gate: gate.GateConfig = field(default_factory=gate.GateConfig)
    progress: bool = True
    heartbeat_s: float = 30.0  # how often a running run shows it is alive (retrain.heartbeat)


@dataclass
class RetrainOutcome:
    run_id: int
    status: str  # "promoted" | "canary" | "rejected" | "failed" | "skipped"
    adapter: str | None  # the candidate's name, when one was trained
    reason: str | None  # why it was rejected, failed or skipped; the gate's checks when promoted
    figures: dict[str, Any]  # everything stored on the run: dataset, training, gate, timings
    loss_curve: Path | None


class _Stopped(Exception):
    """The run ends early without an error (nothing to learn from)."""


def run_retrain(
    config: JobConfig,
    database: Database,
    client: ModelClient,
    *,
    run_id: int,
    dataset: Callable[[], Dataset],
    key_facts: Mapping[str, str] | None = None,
    callbacks: Sequence[TrainerCallback] = (),
) -> RetrainOutcome:
    with database.writer() as session:
        store.start_run(session, run_id=run_id)
    job = _Job(config, database, client, run_id, key_facts or {}, callbacks)
    # If this process is killed the beats stop, and the scheduler reaps the run it left `running`.
    with beating(database, run_id, config.heartbeat_s):
        try:
            outcome = job.run(dataset)
        except _Stopped as stop:
            outcome = job.outcome("skipped", str(stop))
        except Exception as exc:
            log.error("retrain run #%d failed", run_id, exc_info=True)
            job.discard()
            outcome = job.outcome("failed", failure_reason(exc))
        finally:
            if job.work_dir is not None:  # the trainer's scratch folder
                shutil.rmtree(job.work_dir, ignore_errors=True)
    with database.writer() as session:
        store.finish_run(
            session,
            run_id=run_id,
            status=outcome.status,
            decision=outcome.reason if outcome.status in ("promoted", "canary", "rejected") else None,
            candidate=outcome.adapter,
            metrics=outcome.figures,
            error=outcome.reason if outcome.status in ("failed", "skipped") else None,
        )
    log.info("retrain run #%d %s: %s", run_id, outcome.status, outcome.reason)
    return outcome


class _Job:
    def __init__(
        self,
        config: JobConfig,
        database: Database,
        client: ModelClient,
        run_id: int,
        key_facts: Mapping[str, str],
        callbacks: Sequence[TrainerCallback],
    ) -> None:
        self.config, self.database, self.client, self.run_id = config, database, client, run_id
        self.key_facts, self.callbacks = key_facts, callbacks
        self.figures: dict[str, Any] = {"timings": {}}
        self.candidate: str | None = None
        self.out_dir: Path | None = None
        self.work_dir: Path | None = None
        self.registered = self.loaded = False
        self.loss_curve: Path | None = None

    def outcome(self, status: str, reason: str | None) -> RetrainOutcome:
        return RetrainOutcome(self.run_id, status, self.candidate, reason, self.figures, self.loss_curve)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        log.info("retrain run #%d: %s", self.run_id, name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.figures["timings"][f"{name}_s"] = round(time.perf_counter() - started, 2)

    def run(self, build_dataset: Callable[[], Dataset]) -> RetrainOutcome:
        cfg = self.config
        # Fail fast: without the server there is no gate, and training would be wasted.
        down = [replica.base_url for replica in replicas.members(self.client) if not replica.health()]
        if down:
            raise ModelServerUnavailable(", ".join(down), "no answer to /health")
        with self.database.reader() as session:
            canary = queries.open_canary(session)
        if canary is not None:  # its candidate and live must be compared first
            raise _Stopped(f"{canary.candidate}'s canary is still open: it is promoted or stopped first.")

        with self.stage("dataset"):
            data = build_dataset()
            with self.database.reader() as session:
                live = queries.active_adapter(session)
                taken = [a.name for a in queries.list_adapters(session)]
                high_water = queries.feedback_high_water(session)
                erased = queries.erasures_since(session, queries.previous_run_start(session, self.run_id))
        self.figures["dataset"] = {
            "hash": data.hash,
            "counts": data.counts(),
            "dropped": dict(data.dropped),
            "feedback_range": {**high_water, **data.feedback_range},
            # their rows are deleted, so nothing of theirs can be in `counts`; said for the record
            "people_forgotten_since_last_run": erased,
        }
        self.figures["live"] = {"adapter": live.name if live else None}
        train, left_out = pick_training(data.split("train"), cfg.max_examples)
        validation = data.split("validation")
        if left_out:
            self.figures["dataset"]["left_out_by_budget"] = left_out
        if not train:
            raise _Stopped("There are no training examples yet.")
        if live is not None and live.dataset_hash == data.hash:
            raise _Stopped(
                f"Nothing new to learn: {live.name} was trained on this very dataset ({data.hash})."
            )

        # A new, never reused folder for this version.
        self.candidate = registry.next_version(cfg.adapters_dir, cfg.adapter_prefix, taken)
        self.out_dir = registry.claim_folder(cfg.adapters_dir, self.candidate)
        self.work_dir = self.out_dir.with_name(self.out_dir.name + ".work")

        with self.stage("train"):
            result, live_loss = self._train(train, validation, live)
        registry.check_servable(self.out_dir, max_rank=cfg.max_lora_rank)
        self.loss_curve = registry.plot_loss_curve(
            result.log_history,
            self.out_dir / registry.LOSS_CURVE,
            title=f"{self.candidate} (run #{self.run_id})",
        )
        manifest = self._manifest(data, live, result)
        registry.write_manifest(self.out_dir, manifest)
        with self.database.writer() as session:
            store.register_adapter(
                session,
                name=self.candidate,
                path=str(self.out_dir.resolve()),
                base_model=cfg.base_model,
                parent=live.name if live else None,
                dataset_hash=data.hash,
                metrics=self.figures["training"],
            )
        self.registered = True

        with self.stage("gate"):
            decision = self._gate(data, live, result.eval_loss, live_loss)
        registry.write_manifest(self.out_dir, {**manifest, "gate": self.figures["gate"]})

        if not decision.passed:
            self.discard()
            return self.outcome("rejected", decision.summary())
        if 0 < cfg.canary_share < 1:
            with self.stage("canary"):
                rollout.start(
                    self.database,
                    self.client,
                    candidate=self.candidate,
                    path=str(self.out_dir.resolve()),
                    live=live.name if live is not None else cfg.served_model_name,
                    share=cfg.canary_share,
                    run_id=self.run_id,
                )
            return self.outcome("canary", decision.summary())
        with self.stage("promote"):
            promote.promote(
                self.database,
                self.client,
                name=self.candidate,
                actor=cfg.actor,
                keep=cfg.keep_loaded,
                reason=f"retrain run #{self.run_id}: validation passed",
            )
        return self.outcome("promoted", decision.summary())

    def _train(
        self, train: list[Any], validation: list[Any], live: AdapterVersion | None
    ) -> tuple[TrainResult, float | None]:
        cfg = self.config
        assert self.out_dir is not None
        trainer = make_trainer(
            cfg.base_model_dir,
            train,
            validation,
            self.out_dir,
            cfg.train,
            max_lora_rank=cfg.max_lora_rank,
            progress=cfg.progress,
        )
        for callback in self.callbacks:
            trainer.add_callback(callback)
        result = run_trainer(trainer, self.out_dir, cfg.train)
        live_path = Path(live.path) if live is not None and Path(live.path).is_dir() else None
        live_loss = reference_loss(trainer, live_path)
        del trainer
        gc.collect()
        self.figures["training"] = {
            "steps": result.steps,
            "train_loss": round(result.train_loss, 4),
            "eval_loss": round(result.eval_loss, 4) if result.eval_loss is not None else None,
            "live_eval_loss": round(live_loss, 4) if live_loss is not None else None,
            "trained_tokens": result.trained_tokens,
            "train_seconds": round(result.seconds, 2),
            "planned_steps": result.planned_steps,
            "stopped_by_budget": result.stopped_by_budget,
            "tokens_per_s": round(result.tokens_per_s, 1),
            "examples": {"train": len(train), "validation": len(validation)},
        }
        return result, live_loss

    def _gate(
        self, data: Dataset, live: AdapterVersion | None, cand_loss: float | None, live_loss: float | None
    ) -> gate.Decision:
        cfg = self.config
        assert self.candidate is not None and self.out_dir is not None
        gate_set = gate.GateSet.from_dataset(data, cfg.gate)
        promote.make_servable(self.client, self.candidate, str(self.out_dir.resolve()))
        self.loaded = True
        live_name = cfg.served_model_name
        if live is not None:
            promote.make_servable(self.client, live.name, live.path)
            live_name = live.name
        cand, theirs = gate.measure_pair(
            self.client,
            self.candidate,
            live_name,
            gate_set,
            cfg=cfg.gate,
            key_facts=self.key_facts,
            candidate_loss=cand_loss,
            live_loss=live_loss,
            progress=cfg.progress,
        )
        decision = gate.decide(
            cand,
            theirs,
            cfg.gate.margin,
            loss_margin=cfg.gate.loss_margin,
            corrected_min_rate=cfg.gate.corrected_min_rate,
        )
        self.figures["gate"] = {
            "passed": decision.passed,
            "checks": decision.checks,
            "candidate": cand.to_dict(),
            "live": {"model": live_name, **theirs.to_dict()},
            "margin": cfg.gate.margin,
            "loss_margin": cfg.gate.loss_margin,
            "questions": {
                "validation": len(gate_set.validation),
                "corrections": len(gate_set.corrections),
                "liked": len(gate_set.liked),
            },
        }
        return decision

    def _manifest(self, data: Dataset, live: AdapterVersion | None, result: TrainResult) -> dict[str, Any]:
        cfg = self.config
        return {
            "name": self.candidate,
            "base_model": cfg.base_model,
            "parent": live.name if live else None,
            "dataset_hash": data.hash,
            "dataset": self.figures["dataset"],
            "feedback_range": self.figures["dataset"]["feedback_range"],
            "code_version": registry.code_version(),
            "run_id": self.run_id,
            "train_config": asdict(cfg.train),
            "metrics": self.figures["training"],
            "timings": dict(self.figures["timings"]),
            "loss_curve": registry.LOSS_CURVE if self.loss_curve else None,
            "loss_history": [
                {k: row[k] for k in ("step", "loss", "eval_loss") if k in row}
                for row in result.log_history
                if "loss" in row or "eval_loss" in row
            ],
        }

    def discard(self) -> None:
        """The candidate will not serve: unload it, mark it failed, or remove a half-written folder.
        Each step is best effort; the run's record says what went wrong first."""
        name = self.candidate
        if name is None:
            return
        if self.loaded:
            try:
                self.client.unload_adapter(name)
            except ModelServerError as exc:
                log.warning("could not unload candidate %s: %s", name, exc)
        if self.registered:
            try:
                with self.database.writer() as session:
                    store.mark_adapter_failed(session, name=name, metrics={"run_id": self.run_id})
            except Exception:
                log.warning("could not mark candidate %s failed", name, exc_info=True)
        elif self.out_dir is not None and self.out_dir.exists():
            # never registered, so nothing refers to it; the next run takes the next number anyway
            shutil.rmtree(self.out_dir, ignore_errors=True)
