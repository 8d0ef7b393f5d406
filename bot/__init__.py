"""Platform adapters (Slack, Teams, web console), the answer pipeline and the knowledge base."""
