"""The ``TrainConfig`` values each task starts from, where they differ from the dataclass's own defaults.

One home for the API (``train_classifier``, ``train_language_model``) and the command line (``rnnkit train``,
``rnnkit train-lm``); torch-free, so the command line is generated without loading torch.
"""

# Chosen on BBC News' validation split: the validation accuracy peaks within 5-8 epochs of a cosine schedule.
CLASSIFIER_TRAIN_DEFAULTS = {"epochs": 10, "patience": 3}

# A 30-minute budget on 2 cores: the schedule's decay ends when the time does (see training.schedule.Horizon).
# The training state is saved every few seconds: a killed run loses little (the save takes milliseconds).
LM_TRAIN_DEFAULTS = dict(batch_size=64, lr=2e-3, epochs=50, patience=None, warmup=100.0, max_time=1800.0,
                         eval_every=250, weight_decay=0.01, checkpoint_every="5s")
