import random

import pytest

WORDS = {
    "sport": ["match", "goal", "team", "coach", "league", "striker", "season"],
    "tech": ["software", "chip", "computer", "network", "phone", "internet", "data"],
    "money": ["shares", "bank", "profit", "market", "rates", "investors", "economy"],
}
FILLER = ["the", "a", "of", "and", "today", "new", "said", "after", "with", "report", "people", "year"]


def make_texts(n: int, seed: int) -> list[tuple[str, str]]:
    """Labelled sentences: two topic words among filler words, so the label is learnable but not trivial."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.choice(sorted(WORDS))
        words = [rng.choice(FILLER) for _ in range(rng.randint(4, 14))]
        for _ in range(2):
            words.insert(rng.randrange(len(words) + 1), rng.choice(WORDS[label]))
        rows.append((label, " ".join(words)))
    return rows


@pytest.fixture
def tiny_csv(tmp_path):
    def write(name: str, n: int, seed: int):
        path = tmp_path / name
        lines = ["label,text"] + [f"{label},{text}" for label, text in make_texts(n, seed)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    return {"train": write("train.csv", 240, 0), "valid": write("valid.csv", 60, 1), "test": write("test.csv", 60, 2)}
