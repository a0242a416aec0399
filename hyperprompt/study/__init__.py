"""`hyperprompt study`: every method on one backbone, trainer, data and budget, with seeds."""
