"""Gin files (models/, methods/, runs/, experiments/); the CLI puts this folder on the search path."""
