"""Task-conditioning methods: each a Flax module returning a `Conditioning`."""
