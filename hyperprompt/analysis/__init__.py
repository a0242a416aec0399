"""Analyses of trained runs: attention on prompts, parameter counts, model selection."""
