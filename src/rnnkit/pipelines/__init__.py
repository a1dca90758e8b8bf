"""Training runs: a run folder in, a published saved model out.

``classifier.train_classifier`` and ``language_model.train_language_model`` open the world, run pre-flight
(``preflight``), then take their named steps; ``pretraining`` and ``encoders`` give a classifier a pre-trained
encoder. The objects they return live in ``rnnkit.saved``; ``rnnkit.api`` names both for users.
"""
