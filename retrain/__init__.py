"""Datasets from feedback, LoRA training, the validation gate, promotion and rollback."""
