"""Tasks: the glue between data, a model and the shared trainer (batches, loss, evaluation)."""
