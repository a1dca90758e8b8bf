"""The text classifier network: the lesson's model with pooling and dropout."""

from __future__ import annotations

from torch import Tensor, nn

from rnnkit.models.config import ClassifierConfig
from rnnkit.models.encoder import Encoder
from rnnkit.models.pooling import parse_pooling, pool


class RNNClassifier(nn.Module):
    """ids (B, T), lengths (B,) → logits (B, C).

    Embedding → recurrent stack → pooling over valid steps (last, mean, max,
    combinable) → dropout → Linear.
    """

    def __init__(self, config: ClassifierConfig, vocab_size: int, num_classes: int, pad_id: int = 0):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, vocab_size, pad_id)
        self.parts = parse_pooling(config.pooling)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.encoder.output_size * len(self.parts), num_classes)

    def forward(self, ids: Tensor, lengths: Tensor) -> Tensor:
        outputs, h_last, _ = self.encoder(ids, lengths)
        return self.head(self.dropout(pool(outputs, lengths, h_last, self.parts)))
