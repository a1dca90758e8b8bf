"""Every saved-model class answers ``.kind``, and the one loader maps each kind to its class."""

from rnnkit.saved.kinds import MODEL_KINDS
from rnnkit.saved.loader import SAVED_CLASSES


def test_each_model_kind_has_exactly_one_class():
    assert sorted(SAVED_CLASSES) == sorted(MODEL_KINDS)
    assert all(cls.kind == kind for kind, cls in SAVED_CLASSES.items())
