"""The Python faces of the CLI verbs: train, evaluate, predict, generate."""
