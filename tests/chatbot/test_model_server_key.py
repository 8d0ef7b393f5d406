"""MODEL_SERVER_API_KEY: `chatbot model-server` hands the key to vLLM and to the embedded engine in
their environment (VLLM_API_KEY, which both read), never on the command line where `ps` shows it; and
every client the settings build sends it."""

from __future__ import annotations

from pathlib import Path

import httpx
from pydantic import SecretStr

from chatbot.cmd_model import launcher
from chatbot.settings import Settings
from chatbot.wiring import async_model_client, model_client
from feedback import migrate


def test_the_key_travels_in_the_environment_never_the_command_line(tmp_path: Path) -> None:
    migrate.upgrade(f"sqlite:///{tmp_path / 'chatbot.db'}")
    keyed = Settings(data_dir=tmp_path, model_server_api_key=SecretStr("s3cret-key"), vllm_dtype="bfloat16")
    for backend, python in (("transformers", None), ("vllm", Path("/opt/vllm/bin/python"))):
        command, environment = launcher(keyed, tmp_path, backend, python)()
        assert environment["VLLM_API_KEY"] == "s3cret-key", backend
        assert "s3cret-key" not in " ".join(command), backend
    _, open_environment = launcher(Settings(data_dir=tmp_path), tmp_path, "transformers", None)()
    assert "VLLM_API_KEY" not in open_environment


async def test_the_clients_the_settings_build_send_the_key(tmp_path: Path) -> None:
    seen: list[str | None] = []

    def server(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("Authorization"))
        return httpx.Response(200, json={"object": "list", "data": [{"id": "base"}]})

    settings = Settings(data_dir=tmp_path, model_server_api_key=SecretStr("s3cret-key"))
    sync = model_client(settings)
    sync._client._http._transport = httpx.MockTransport(server)  # type: ignore[attr-defined]
    assert sync.models() == ["base"]
    sync.close()
    client = async_model_client(settings)
    client._http._transport = httpx.MockTransport(server)
    assert await client.models() == ["base"]
    await client.aclose()
    assert seen == ["Bearer s3cret-key", "Bearer s3cret-key"]
