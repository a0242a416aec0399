"""Gin files: models/, methods/, runs/, experiments/ (the CLI searches this folder)."""
