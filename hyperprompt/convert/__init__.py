"""Pretrained T5 weights in and out: Hugging Face and t5x checkpoints <-> our params."""
