"""Saved models: the objects a run publishes and ``load`` opens again, each with a ``kind`` (see ``kinds``).

``classifier.Classifier`` and ``language_model.LanguageModel`` are the objects; ``folders`` finds and opens a saved
folder; ``loader.load_saved_model`` opens whichever kind a folder holds. Nothing here trains (see ``pipelines``).
"""
