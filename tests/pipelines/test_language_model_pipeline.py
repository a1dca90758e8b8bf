"""Language models: state carried across windows, sampling rules, reproducible samples, CLI."""

import json
import subprocess
import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

from rnnkit.api.language_model import LanguageModel, train_language_model
from rnnkit.data import CharTokenizer, StreamBatcher, Vocabulary
from rnnkit.generation import SamplingConfig, filter_logits, generate_pieces, sample_next
from rnnkit.models.config import LanguageModelConfig
from rnnkit.models.language_model import RNNLanguageModel, detach_state
from rnnkit.tasks.language_model import score_ids
from rnnkit.training import TrainConfig

TEXT = "Shall I compare thee to a summer's day?\nThou art more lovely and more temperate.\n" * 30


def _tiny(cell="lstm", vocab_size=30):
    torch.manual_seed(0)
    return RNNLanguageModel(LanguageModelConfig(cell=cell, embedding_dim=8, hidden_size=12, num_layers=2, dropout=0.0),
                            vocab_size).double().eval()


def test_carried_state_equals_one_pass():
    for cell in ("lstm", "gru", "rnn"):
        model = _tiny(cell)
        ids = torch.randint(2, 30, (3, 50))
        whole, _ = model(ids)
        loss_whole = F.cross_entropy(whole[:, :-1].reshape(-1, 30), ids[:, 1:].reshape(-1), reduction="sum")
        state, total = None, 0.0
        for start in range(0, 49, 7):  # windows of 7 with the state carried and detached
            x, y = ids[:, start:start + 7], ids[:, start + 1:start + 8]
            x = x[:, : y.shape[1]]
            logits, state = model(x, state)
            state = detach_state(state)
            total = total + F.cross_entropy(logits.reshape(-1, 30), y.reshape(-1), reduction="sum")
        assert abs(float(total.detach()) - float(loss_whole.detach())) < 1e-6


def test_score_ids_matches_a_single_pass():
    model = _tiny()
    ids = torch.randint(2, 30, (400,))
    nats, count = score_ids(model, ids, window=37)
    logits, _ = model(ids[None, :-1])
    expected = F.cross_entropy(logits[0], ids[1:], reduction="sum")
    assert count == 399 and abs(nats - float(expected.detach())) < 1e-6


def test_stream_windows_cover_training_text_once_in_order():
    ids = torch.arange(1000)
    batcher = StreamBatcher(ids, batch_size=4, bptt=13)
    xs = torch.cat([x for x, _ in batcher], dim=1)
    assert torch.equal(xs, ids.view(4, 250)[:, :-1])


def test_top_k_one_equals_greedy():
    logits = torch.randn(5, 40)
    greedy = sample_next(logits, SamplingConfig(temperature=0))
    for seed in range(5):
        g = torch.Generator().manual_seed(seed)
        sampled = sample_next(logits, SamplingConfig(temperature=1.3, top_k=1), generator=g)
        assert torch.equal(sampled, greedy)


@pytest.mark.parametrize("top_p", [1e-300, 1e-46, 5e-324, 1e-30])
def test_a_vanishing_top_p_keeps_the_top_token(top_p):
    """top_p below float32's smallest number rounds to 0 against the probabilities: the top token still stays,
    so every setting samples (as greedy would) instead of finding no token left."""
    logits = torch.randn(4, 30, generator=torch.Generator().manual_seed(0)) * 3
    banned = torch.tensor([0, 1])
    greedy = sample_next(logits, SamplingConfig(temperature=0), banned)
    for temperature in (0, 0.7, 2.0):
        config = SamplingConfig(temperature=temperature, top_p=top_p)
        kept = torch.isfinite(filter_logits(logits, config, banned))
        assert kept.sum(1).tolist() == [1] * 4 and kept[torch.arange(4), greedy].all()
        assert torch.equal(sample_next(logits, config, banned, torch.Generator().manual_seed(1)), greedy)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.floats(0.05, 3.0), st.one_of(st.none(), st.integers(1, 20)),
       st.one_of(st.none(), st.floats(0.05, 1.0)))
def test_special_ids_are_never_sampled(seed, temperature, top_k, top_p):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(8, 20, generator=g) * 5
    logits[:, :2] += 50  # make the banned ids by far the most likely
    banned = torch.tensor([0, 1])
    config = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p)
    ids = sample_next(logits, config, banned, generator=g)
    assert not bool(((ids == 0) | (ids == 1)).any())
    assert torch.isinf(filter_logits(logits, config, banned)[:, :2]).all()


def test_fixed_seed_reproduces_a_sample_and_stop_string():
    tokenizer = CharTokenizer()
    vocab = Vocabulary.build([tokenizer.tokenize(TEXT)])
    model = _tiny(vocab_size=len(vocab)).float()
    a = "".join(generate_pieces(model, tokenizer, vocab, "Thou", 60, SamplingConfig(temperature=1.0), seed=7))
    b = "".join(generate_pieces(model, tokenizer, vocab, "Thou", 60, SamplingConfig(temperature=1.0), seed=7))
    c = "".join(generate_pieces(model, tokenizer, vocab, "Thou", 60, SamplingConfig(temperature=1.0), seed=8))
    assert a == b and a != c and len(a) == 60
    stop = a[20:22]
    cut = "".join(generate_pieces(model, tokenizer, vocab, "Thou", 60, SamplingConfig(temperature=1.0),
                                  stop=stop, seed=7))
    assert cut == a[: a.index(stop)]


def test_train_save_load_generate(tmp_path):
    corpus = tmp_path / "sonnet.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    lm, summary = train_language_model(str(corpus), tmp_path / "run",
                                       model=LanguageModelConfig(embedding_dim=16, hidden_size=48, num_layers=1,
                                                                 dropout=0.0),
                                       train=TrainConfig(epochs=8, batch_size=8, lr=1e-2, progress=False,
                                                         patience=None), bptt=32)
    assert summary["final_valid_bits_per_char"] < 2.5  # uniform over the vocabulary would be log2(|V|) ≈ 4.9
    loaded = LanguageModel.load(tmp_path / "run")
    assert loaded.generate("Thou", 40, seed=1) == lm.generate("Thou", 40, seed=1)
    pieces = list(loaded.generate_iter("Shall", 30, temperature=0.5, seed=2))
    assert len("".join(pieces)) == 30 and "<pad>" not in "".join(pieces)
    assert (tmp_path / "run" / "report" / "training_curves.png").exists()


def test_cli_train_lm_generate_eval(tmp_path):
    corpus = tmp_path / "sonnet.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    run = [sys.executable, "-m", "rnnkit"]
    r = subprocess.run([*run, "train-lm", "--data", str(corpus), "--out", str(tmp_path / "lm"), "--hidden-size", "24",
                        "--num-layers", "1", "--embedding-dim", "8", "--epochs", "2", "--batch-size", "4",
                        "--bptt", "32", "--max-time", "None", "--eval-every", "None", "--no-progress"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "final_valid_bits_per_char" in json.loads(r.stdout.strip().splitlines()[-1])
    r = subprocess.run([*run, "generate", str(tmp_path / "lm"), "--prompt", "Thou", "-n", "25", "--seed", "1"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("Thou") and len(r.stdout.rstrip("\n")) == 29
    r = subprocess.run([*run, "eval", str(tmp_path / "lm"), str(corpus), "--json"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["bits_per_char"] > 0
