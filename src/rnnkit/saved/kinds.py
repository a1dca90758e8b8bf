"""The kinds of saved model, as written in ``config.json``'s ``"kind"``: each spelled here once.

Everything that asks "what is this model?" (serve, export, the CLI) compares against these names, or asks the
object's ``.kind``; ``rnnkit.saved.loader`` maps each kind to its class. Imports nothing, so light callers (the ONNX
runtime, the CLI) can use it without loading torch.
"""

CLASSIFIER = "classifier"
LANGUAGE_MODEL = "language_model"
ENCODER = "encoder"  # a pre-trained encoder folder: an input to training, not a model one serves or exports

# The kinds ``load_saved_model`` opens, serve serves and export exports.
MODEL_KINDS = (CLASSIFIER, LANGUAGE_MODEL)


def kind_text(kind: str) -> str:
    """``"language_model"`` -> ``"language model"``: the words messages use."""
    return kind.replace("_", " ")
