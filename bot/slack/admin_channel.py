"""Retrain results in the admin channel: the decision and figures as a message, the loss curve as an
image (files_upload_v2: files.getUploadURLExternal, the bytes to the upload URL, then
files.completeUploadExternal shares it in the channel).

The scheduler calls `AdminChannel` after each run, from its worker thread, so it uses the
synchronous Web API client. Errors propagate: the scheduler logs them and carries on.
"""

from __future__ import annotations

import logging
from pathlib import Path

from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.web import WebClient

from bot.admin import run_summary
from feedback.models import RetrainRun

log = logging.getLogger(__name__)


def sync_web_client(*, bot_token: str, api_url: str) -> WebClient:
    return WebClient(
        token=bot_token,
        base_url=api_url if api_url.endswith("/") else f"{api_url}/",
        retry_handlers=[ConnectionErrorRetryHandler(), RateLimitErrorRetryHandler(max_retry_count=3)],
    )


class AdminChannel:
    def __init__(self, client: WebClient, channel: str) -> None:
        self.client = client
        self.channel = channel

    def post(self, text: str) -> None:
        """One line to the channel (a canary's step)."""
        self.client.chat_postMessage(channel=self.channel, text=text)

    def __call__(self, run: RetrainRun, loss_curve: Path | None) -> None:
        self.client.chat_postMessage(channel=self.channel, text=run_summary(run))
        if loss_curve is None:
            return
        if not loss_curve.is_file():
            log.warning("run #%s: loss curve %s is missing; posted the figures only", run.id, loss_curve)
            return
        self.client.files_upload_v2(
            channel=self.channel,
            file=str(loss_curve),
            filename=f"retrain-{run.id}-loss.png",
            title=f"Loss curve, retrain #{run.id}" + (f" ({run.candidate})" if run.candidate else ""),
            alt_txt="Training and validation loss by step",
        )
