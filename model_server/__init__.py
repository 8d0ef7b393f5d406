"""Base model preparation, vLLM launcher, embedded engine and the one client."""
