"""What the tests and benchmarks put in place of the outside world, one module per thing stood in for.

Slack: its Web API (`slack_api`), what it sends to the bot (`slack_payloads`). Teams: the Bot
Connector (`teams_connector`), its activities (`teams_activities`), Microsoft's token keys
(`bot_framework_auth`). Any platform: a fake retriever and model server behind httpx (`fakes`).
Real model servers (`model_servers`), LoRA adapters (`lora`), a retrain (`schedule_worker`), rows in
the store (`feedback_seed`). The real bot wired to those: `slack_harness`, `teams_harness`, `console`;
the `chatbot` command as a process (`cli`); what harnesses share (`common`); where things are (`paths`).

Imported as `tests.support.<module>`, with the repository root importable: pytest makes it so, and
so does `python -m bench.<name>` run from the root.
"""
