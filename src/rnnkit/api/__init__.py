"""The Python faces of the CLI verbs: train, evaluate, predict, generate.

``rnnkit.api.classifier`` and ``rnnkit.api.language_model`` name the public objects; the training runs live in
``rnnkit.pipelines``, the saved models in ``rnnkit.saved``, the data configs in ``rnnkit.data``.
"""
