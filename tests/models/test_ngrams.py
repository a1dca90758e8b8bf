"""The n-gram path beside the recurrence: the bag's arithmetic, padding invariance, shapes, and that it learns."""

import math

import pytest
import torch

from rnnkit.models.classifier import RNNClassifier
from rnnkit.models.config import ClassifierConfig, classifier_config_from_saved, from_dict
from rnnkit.models.ngrams import BIGRAM_MULTIPLIER, NgramBag, auto_weighting, bigram_buckets

VOCAB, BUCKETS = 30, 17


def _net(ngrams, **kw):
    torch.manual_seed(0)
    config = ClassifierConfig(embedding_dim=6, hidden_size=5, embedding_dropout=0.0, dropout=0.0, ngrams=ngrams,
                              ngram_buckets=BUCKETS, ngram_dim=4, **kw)
    net = RNNClassifier(config, vocab_size=VOCAB, num_classes=3, pad_id=0).double().eval()
    with torch.no_grad():  # the logit path starts at zero; random rows make the test see it
        net.ngrams.table.weight.normal_()
    return net


def test_bag_is_sum_of_unigram_and_bigram_rows_over_sqrt_count():
    torch.manual_seed(0)
    bag = NgramBag(VOCAB, BUCKETS, 3, pad_id=0).double()
    ids, lengths = torch.tensor([[3, 7, 9, 0, 0]]), torch.tensor([3])
    w = bag.table.weight
    rows = [w[3], w[7], w[9]] + [w[VOCAB + (a * BIGRAM_MULTIPLIER + b) % BUCKETS] for a, b in ((3, 7), (7, 9))]
    expected = torch.stack(rows).sum(0) / 5 ** 0.5
    torch.testing.assert_close(bag(ids, lengths)[0], expected, rtol=0, atol=1e-12)


def test_bigram_hash_keeps_order_and_range():
    ids = torch.tensor([[3, 7, 3], [100_000, 99_999, 5]])
    hashed = bigram_buckets(ids, BUCKETS)
    assert hashed.shape == (2, 2) and int(hashed.min()) >= 0 and int(hashed.max()) < BUCKETS
    assert hashed[0, 0] != hashed[0, 1]  # (3, 7) and (7, 3)


def test_idf_bag_weighs_each_row_by_its_idf_over_the_l2_norm():
    torch.manual_seed(0)
    bag = NgramBag(VOCAB, BUCKETS, 3, pad_id=0, weighting="idf").double()
    with torch.no_grad():
        bag.idf.uniform_(1.0, 5.0)
    ids, lengths = torch.tensor([[3, 7, 3, 0]]), torch.tensor([3])
    w, idf = bag.table.weight, bag.idf
    rows = [3, 7, 3] + [VOCAB + (a * BIGRAM_MULTIPLIER + b) % BUCKETS for a, b in ((3, 7), (7, 3))]
    norm = sum(float(idf[r]) ** 2 for r in rows) ** 0.5  # over occurrences: "3" counts twice
    expected = sum(w[r] * idf[r] for r in rows) / norm
    torch.testing.assert_close(bag(ids, lengths)[0], expected, rtol=0, atol=1e-12)


def test_fit_idf_is_the_smoothed_idf_of_each_row_over_the_texts_as_read():
    bag = NgramBag(10, 7, 3, pad_id=0, weighting="idf")
    # The first text is read as [2, 3, 2] (max_length 3): "2" counts once for it, the cut-off "3 ..." not at all;
    # id 1 (unknown words) is a row like any other; an empty text holds nothing.
    texts = [[2, 3, 2, 3, 9], [2, 4, 1], [5], []]
    bag.fit_idf(texts, max_length=3)
    n = len(texts)
    df = torch.zeros(17)
    for row in [2, 3, 4, 1, 5]:
        df[row] += {2: 2}.get(row, 1)
    for a, b in ((2, 3), (3, 2), (2, 4), (4, 1)):
        df[10 + (a * BIGRAM_MULTIPLIER + b) % 7] += 1
    torch.testing.assert_close(bag.idf, torch.log((1.0 + n) / (1.0 + df)) + 1.0)
    assert float(bag.idf[9]) == pytest.approx(math.log(1 + n) + 1)  # never read: the largest idf
    with pytest.raises(ValueError, match="ngram_weighting='idf'"):
        NgramBag(10, 7, 3).fit_idf(texts)
    with pytest.raises(ValueError, match="ngram_weighting must be one of"):
        NgramBag(10, 7, 3, weighting="tfidf")


@pytest.mark.parametrize("weighting", ["count", "idf"])
@pytest.mark.parametrize("ngrams", ["logits", "features"])
@pytest.mark.parametrize("pooling", ["max+mean", "last"])
def test_ngram_paths_are_padding_invariant(ngrams, pooling, weighting):
    net = _net(ngrams, pooling=pooling, ngram_weighting=weighting)
    if weighting == "idf":
        net.ngrams.fit_idf([[3, 7, 9], [5, 6, 7, 8, 9, 10, 11], [3, 4]])
    ids = torch.tensor([[3, 7, 9, 4, 0, 0, 0], [5, 6, 7, 8, 9, 10, 11]])
    lengths = torch.tensor([4, 7])
    with torch.no_grad():
        together = net(ids, lengths)
        alone = net(ids[:1, :4], lengths[:1])
        # Garbage ids past the length must not matter either.
        noisy = net(torch.tensor([[3, 7, 9, 4, 12, 13, 14], [3, 7, 9, 4, 29, 1, 2]]), torch.tensor([4, 4]))
    assert together.shape == (2, 3)
    # The bag on its own does not even index its table past the length: ids out of any range are fine there.
    with torch.no_grad():
        bag_noisy = net.ngrams(torch.tensor([[3, 7, 9, 4, 10**6, -5]]), torch.tensor([4]))
        torch.testing.assert_close(bag_noisy, net.ngrams(ids[:1, :4], lengths[:1]), rtol=0, atol=1e-12)
    torch.testing.assert_close(together[:1], alone, rtol=0, atol=1e-12)
    torch.testing.assert_close(noisy, alone.expand(2, 3), rtol=0, atol=1e-12)
    # The bag alone is equal to the bit, padded or not (a served text must not depend on its batch-mates).
    with torch.no_grad():
        long_pad = torch.cat([ids[:1, :4], torch.zeros(1, 60, dtype=ids.dtype)], 1)
        assert torch.equal(net.ngrams(long_pad, lengths[:1]), net.ngrams(ids[:1, :4], lengths[:1]))


def test_shapes_and_what_each_path_adds():
    logits, features = _net("logits"), _net("features")
    assert logits.ngrams.table.weight.shape == (VOCAB + BUCKETS, 3)
    assert features.ngrams.table.weight.shape == (VOCAB + BUCKETS, 4)
    assert logits.head.in_features == 2 * 5 * 2  # the head is the plain model's
    assert features.head.in_features == 2 * 5 * 2 + 4
    ids, lengths = torch.tensor([[3, 7, 9, 0]]), torch.tensor([3])
    with torch.no_grad():
        logits.head.weight.zero_()
        logits.head.bias.zero_()
        # With the recurrent part's head silenced, the logits are the bag's score alone.
        torch.testing.assert_close(logits(ids, lengths), logits.ngrams(ids, lengths))
    fresh = RNNClassifier(ClassifierConfig(ngrams="logits", ngram_buckets=BUCKETS), VOCAB, 3)
    assert not fresh.ngrams.table.weight.any()  # a linear model's weights start at zero


def test_word_order_reaches_the_bag_through_bigrams():
    net = _net("logits")
    with torch.no_grad():
        a = net.ngrams(torch.tensor([[3, 7, 9]]), torch.tensor([3]))
        b = net.ngrams(torch.tensor([[9, 7, 3]]), torch.tensor([3]))
    assert not torch.allclose(a, b)


def test_bag_alone_learns_a_task_only_bigrams_can_solve():
    # Both classes use the same words as often ("3 7 3 7 ..." against "7 3 7 3 ..."): only the bigram counts
    # (4 x "3 7" and 3 x "7 3", or the other way round) tell them apart.
    torch.manual_seed(0)
    bag = NgramBag(VOCAB, 1 << 10, 2, pad_id=0, zero_init=True)
    ids = torch.tensor([[3, 7] * 4, [7, 3] * 4] * 8)
    labels = torch.tensor([0, 1] * 8)
    lengths = torch.full((16,), 8)
    opt = torch.optim.SparseAdam(bag.parameters(), lr=0.1)  # the table's gradient is sparse
    for _ in range(100):
        loss = torch.nn.functional.cross_entropy(bag(ids, lengths), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (bag(ids, lengths).argmax(1) == labels).all() and loss.item() < 0.1


def test_config_checks_and_old_configs_load():
    with pytest.raises(ValueError, match="ngrams must be one of"):
        ClassifierConfig(ngrams="trigrams")
    with pytest.raises(ValueError, match="ngram_buckets"):
        ClassifierConfig(ngram_buckets=0)
    with pytest.raises(ValueError, match="ngram_weighting must be one of"):
        ClassifierConfig(ngram_weighting="tf")
    old = {k: v for k, v in ClassifierConfig().__dict__.items() if not k.startswith("ngram")}
    assert from_dict(ClassifierConfig, old).ngrams == "logits"  # today's default, chosen on validation
    # A checkpoint saved before the fields existed had no n-gram path (and the table, had there been one, the base
    # rate), whatever today's defaults are.
    assert classifier_config_from_saved(old).ngrams == "none"
    assert classifier_config_from_saved(old).ngram_lr_scale == 1.0
    assert classifier_config_from_saved(old).ngram_weighting == "count"
    # A count bag has no idf buffer: its state dict is the one older versions saved.
    assert "ngrams.idf" not in RNNClassifier(ClassifierConfig(ngram_weighting="count"), VOCAB, 3).state_dict()
    assert "ngrams.idf" in RNNClassifier(ClassifierConfig(ngram_weighting="idf"), VOCAB, 3).state_dict()
    assert classifier_config_from_saved({**old, "ngrams": "logits"}).ngrams == "logits"
    assert RNNClassifier(ClassifierConfig(ngrams="none"), VOCAB, 3).ngrams is None


def test_ngram_dropout_drops_entries_in_training_only_and_keeps_the_expected_bag():
    torch.manual_seed(0)
    bag = NgramBag(VOCAB, BUCKETS, 2, pad_id=0, dropout=0.5).double()
    plain = NgramBag(VOCAB, BUCKETS, 2, pad_id=0).double()
    plain.load_state_dict(bag.state_dict())
    ids, lengths = torch.tensor([[3, 7, 9, 4, 5, 6]]), torch.tensor([6])
    bag.eval()
    assert torch.equal(bag(ids, lengths), plain(ids, lengths))  # evaluation reads every n-gram
    bag.train()
    full = plain.bags(ids, lengths)[1]
    dropped = torch.stack([bag.bags(ids, lengths)[1] for _ in range(4000)])
    # Each entry is 0 or twice its full weight; about half survive; the mean bag is the full one.
    assert bool(((dropped == 0) | torch.isclose(dropped, 2 * full)).all())
    assert 0.45 < float((dropped != 0).double().mean()) < 0.55
    torch.testing.assert_close(dropped.mean(0), full, rtol=0, atol=0.05)
    with pytest.raises(ValueError, match="ngram_dropout"):
        ClassifierConfig(ngram_dropout=1.0)
    assert classifier_config_from_saved({}).ngram_dropout == 0.0


def test_auto_weighting_is_idf_for_documents_and_count_for_sentences():
    assert auto_weighting([20, 21, 25]) == "count"
    assert auto_weighting([150, 400, 30]) == "idf"
    assert auto_weighting([99, 100]) == "count" and auto_weighting([100, 101]) == "idf"  # median 99.5, 100.5
    assert auto_weighting([5000, 5000, 10], max_length=80) == "count"  # the texts as the model reads them
    assert auto_weighting([]) == "count"
    # A network built straight from an "auto" config (nothing fitted it) counts, and has no idf to save.
    net = RNNClassifier(ClassifierConfig(ngram_weighting="auto"), VOCAB, 3)
    assert net.ngrams.idf is None and net.ngrams.weighting == "count"


def test_parts_are_the_recurrence_and_the_bag_whose_sum_is_the_logits():
    net = _net("logits")
    ids, lengths = torch.tensor([[3, 7, 9, 0], [4, 5, 6, 8]]), torch.tensor([3, 4])
    with torch.no_grad():
        logits, recurrent, bag = net(ids, lengths, parts=True)
        torch.testing.assert_close(logits, net(ids, lengths), rtol=0, atol=0)
        torch.testing.assert_close(bag, net.ngrams(ids, lengths), rtol=0, atol=0)
        torch.testing.assert_close(logits, recurrent + bag, rtol=0, atol=0)
    with pytest.raises(ValueError, match="parts=True needs ngrams='logits'"):
        _net("features")(ids, lengths, parts=True)
    with pytest.raises(ValueError, match="ngram_aux_loss must be a number >= 0"):
        ClassifierConfig(ngram_aux_loss=-1)
    assert classifier_config_from_saved({}).ngram_aux_loss == 0.0


def test_aux_loss_trains_each_part_on_its_own_too():
    from rnnkit.data.encoded import EncodedDataset
    from rnnkit.tasks.classification import ClassificationTask

    net = _net("logits").float().train()
    data = EncodedDataset([[3, 7, 9], [4, 5, 6, 8], [10, 11]], [0, 1, 2], ["a", "b", "c"])
    ce = torch.nn.functional.cross_entropy
    labels = torch.tensor([0, 1, 2])
    for weight in (0.0, 0.5):
        task = ClassificationTask(data, None, ["a", "b", "c"], 3, None, aux_loss=weight)
        torch.manual_seed(1)
        result = task.train_step(net, [0, 1, 2])
        torch.manual_seed(1)  # the same dropout masks
        ids, lengths, _ = task._tensors(data, [0, 1, 2], "cpu")
        logits, recurrent, bag = net(ids, lengths, parts=True)
        expected = ce(logits, labels) + weight * (ce(recurrent, labels) + ce(bag, labels))
        torch.testing.assert_close(result.loss, expected)
