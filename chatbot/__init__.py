"""Company Q&A bot: the composition root (settings and the `chatbot` command)."""
