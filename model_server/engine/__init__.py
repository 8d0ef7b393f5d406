"""The embedded engine: vLLM's OpenAI-compatible HTTP API on transformers + peft, for CPU hosts.

    python -m model_server.engine --model DIR --served-model-name base --max-loras 3

Modules: `app` (HTTP routes), `core` (the engine object), `generation` (the batching thread),
`adapters` (LoRA checks and residency), `chat`/`protocol`/`responses` (vLLM's request and response
shapes), `sampling`, `text`, `kvcache`, `errors`.
"""

from model_server.engine.app import create_app
from model_server.engine.core import Engine, EngineConfig

__all__ = ["Engine", "EngineConfig", "create_app"]
