"""ULMFiT pieces on tiny models: gradual unfreezing, discriminative rates, the slanted triangle, and the encoder read
as a forward / backward language model (the weights it trains are the classifier's own, padding never counts)."""

from __future__ import annotations

import math

import pytest
import torch

from rnnkit.data import EncodedDataset
from rnnkit.models.classifier import RNNClassifier
from rnnkit.models.config import ClassifierConfig
from rnnkit.models.encoder import Encoder
from rnnkit.models.encoder_lm import EncoderLM, SampledSoftmax, lm_directions
from rnnkit.tasks.classification import ClassificationTask
from rnnkit.tasks.language_model import LanguageModelTask, SampledLanguageModelTask
from rnnkit.training import TrainConfig, Trainer, lr_factor, make_optimizer, make_scheduler
from rnnkit.training.pretrain_config import ULMFIT, PretrainConfig
from rnnkit.training.schedule import STLR_RATIO
from rnnkit.training.ulmfit import Finetuning, layer_groups

V = 30


def _classifier(layers=2, bidirectional=True, seed=0):
    torch.manual_seed(seed)
    config = ClassifierConfig(embedding_dim=6, hidden_size=5, num_layers=layers, bidirectional=bidirectional,
                              embedding_dropout=0.0, dropout=0.0)
    return RNNClassifier(config, V, 3)


def _task(net, epoch_hook=None):
    g = torch.Generator().manual_seed(3)
    ids = [torch.randint(2, V, (int(n),), generator=g).tolist() for n in torch.randint(3, 9, (48,), generator=g)]
    labels = [s[0] % 3 for s in ids]
    data = EncodedDataset(ids, labels, [str(i) for i in range(len(ids))])
    return ClassificationTask(data, data, ["a", "b", "c"], 8, None, epoch_hook=epoch_hook)


def _snapshot(params):
    return [p.detach().clone() for p in params]


def test_gradual_unfreezing_trains_only_the_groups_unfrozen_so_far():
    net = _classifier(layers=2, bidirectional=False)
    finetune = Finetuning(net, PretrainConfig(pretrain_lm=True, **ULMFIT), lr=1e-2, weight_decay=0.1)
    groups = finetune.groups
    assert len(groups) == 4  # head, recurrent layer 1, recurrent layer 0, embedding
    snapshots, trainable = [], []

    def record(model, epoch):  # the weights as each epoch starts, and which groups it may train
        snapshots.append([_snapshot(g) for g in groups])
        finetune.on_epoch_start(model, epoch)
        trainable.append([all(p.requires_grad for p in g) for g in groups])

    config = TrainConfig(epochs=4, batch_size=8, lr=1e-2, weight_decay=0.1, patience=None, progress=False,
                         schedule="stlr")
    Trainer(net, _task(net, record), config, param_groups=finetune.param_groups).fit()
    for epoch in range(3):
        # Epoch e trains groups 0..e: the head, then the top recurrent layer, then the one below; the embedding last.
        assert trainable[epoch] == [k <= epoch for k in range(4)]
        for k in range(4):
            changed = any(not torch.equal(a, b) for a, b in zip(snapshots[epoch][k], snapshots[epoch + 1][k],
                                                                 strict=True))
            # Frozen groups keep their weights exactly, weight decay included.
            assert changed == (k <= epoch), f"group {k} in epoch {epoch}"
    assert trainable[3] == [True] * 4
    # A frozen group gets no gradient at all (not a zero one that AdamW's decay would still act on).
    finetune.on_epoch_start(net, 0)
    net.zero_grad(set_to_none=True)
    ids, lengths = torch.randint(2, V, (2, 4)), torch.tensor([4, 3])
    net(ids, lengths).sum().backward()
    assert all(p.grad is None for g in groups[1:] for p in g)
    assert all(p.grad is not None for p in groups[0])
    finetune.release()
    assert all(p.requires_grad for p in net.parameters())


def test_layer_groups_are_head_then_recurrent_layers_top_down_then_embedding():
    net = _classifier(layers=2)
    groups = layer_groups(net)
    names = {id(p): n for n, p in net.named_parameters()}
    as_names = [sorted(names[id(p)] for p in g) for g in groups]
    # The top group is everything outside the encoder: the classifier layer and the n-gram path (on by default).
    assert net.config.ngrams != "none"
    assert as_names[0] == ["head.bias", "head.weight", "ngrams.table.weight"]
    assert all(n.endswith(("_l1", "_l1_reverse")) for n in as_names[1]) and len(as_names[1]) == 8
    assert all(n.endswith(("_l0", "_l0_reverse")) for n in as_names[2]) and len(as_names[2]) == 8
    assert as_names[3] == ["encoder.embedding.weight"]


def test_discriminative_learning_rates_divide_by_2_6_per_group_and_keep_their_ratio_under_the_schedule():
    net = _classifier(layers=2)
    config = TrainConfig(lr=0.01, weight_decay=0.05, schedule="stlr", warmup=0.2)
    finetune = Finetuning(net, PretrainConfig(pretrain_lm=True, **ULMFIT), config.lr, config.weight_decay)
    optimizer = make_optimizer(net, config, finetune.param_groups(net))
    depth_of = {id(p): k for k, g in enumerate(finetune.groups) for p in g}
    for group in optimizer.param_groups:
        depths = {depth_of[id(p)] for p in group["params"]}
        assert len(depths) == 1
        k = depths.pop()
        # A sparse table (the n-gram path, in the head) keeps its multiple of its layer group's rate.
        assert group["lr"] == pytest.approx(0.01 / 2.6 ** k * group.get("lr_scale", 1.0), rel=1e-12)
        # Decay on weight matrices only, never on biases, the embedding or a sparse lookup table.
        assert group.get("weight_decay", 0.0) == (0.05 if all(p.ndim >= 2 for p in group["params"])
                                                  and k < len(finetune.groups) - 1 and not group.get("sparse")
                                                  else 0.0)
    scheduler = make_scheduler(optimizer, config, total_steps=20)
    for _ in range(7):
        optimizer.step()
        scheduler.step()
        top = optimizer.param_groups[0]["lr"]
        for group in optimizer.param_groups:
            k = depth_of[id(group["params"][0])]
            assert group["lr"] == pytest.approx(top / 2.6 ** k * group.get("lr_scale", 1.0), rel=1e-9)
    with pytest.raises(ValueError, match="lr_decay"):
        PretrainConfig(lr_decay=0.5)


def test_slanted_triangular_schedule_rises_then_falls_linearly_between_its_endpoints():
    cut, total = 10, 100
    f = [lr_factor(s, warmup_steps=cut, total_steps=total, schedule="stlr") for s in range(total + 1)]
    assert f[0] == pytest.approx(1 / STLR_RATIO)
    assert f[cut] == pytest.approx(1.0)
    assert f[total] == pytest.approx(1 / STLR_RATIO)
    assert all(a < b for a, b in zip(f[:cut], f[1:cut + 1], strict=True))  # strictly rising to the peak
    assert all(a > b for a, b in zip(f[cut:total], f[cut + 1:], strict=True))  # strictly falling after it
    rise = [b - a for a, b in zip(f[:cut], f[1:cut + 1], strict=True)]
    fall = [a - b for a, b in zip(f[cut:total], f[cut + 1:], strict=True)]
    assert max(rise) - min(rise) < 1e-12 and max(fall) - min(fall) < 1e-12  # both linear
    # The paper's formula at one point of the decay: p = 1 - (t - cut) / (cut (1/cut_frac - 1)).
    p = 1 - (55 - cut) / (cut * (1 / 0.1 - 1))
    assert f[55] == pytest.approx((1 + p * (STLR_RATIO - 1)) / STLR_RATIO)
    assert lr_factor(10_000, warmup_steps=cut, total_steps=total, schedule="stlr") == pytest.approx(1 / STLR_RATIO)


def _encoder(bidirectional=True, layers=1):
    torch.manual_seed(0)
    config = ClassifierConfig(embedding_dim=6, hidden_size=5, num_layers=layers, bidirectional=bidirectional,
                              embedding_dropout=0.0, backend="reference")
    return Encoder(config, V).double()


def test_backward_lm_reads_each_text_reversed_exactly_as_the_classifiers_backward_direction_does():
    encoder = _encoder()
    lm = EncoderLM(encoder, "backward", dropout=0.0).double().eval()
    g = torch.Generator().manual_seed(1)
    lengths = torch.tensor([7, 4, 2])
    ids = torch.randint(2, V, (3, 7), generator=g)
    padded = ids.masked_fill(torch.arange(7).unsqueeze(0) >= lengths.unsqueeze(1), 0)
    outputs, _, _ = encoder(padded, lengths)
    backward = outputs[..., encoder.config.hidden_size:]
    for i, n in enumerate(lengths.tolist()):
        text = padded[i, :n]
        # Alone and reversed, as the backward LM reads a text in its reversed stream.
        states, _ = lm.rnn(lm.embedding(text.flip(0)).unsqueeze(0))
        torch.testing.assert_close(states[0].flip(0), backward[i, :n], rtol=0, atol=1e-12)
        # Padding invariance: the same text padded in a batch gives the same logits on its valid steps.
        alone, _ = lm(text.flip(0).unsqueeze(0))
        reversed_batch = torch.stack([torch.cat([r[:m].flip(0), r[m:]]) for r, m in zip(padded, lengths.tolist(),
                                                                                       strict=True)])
        batched, _ = lm(reversed_batch, lengths=lengths)
        torch.testing.assert_close(batched[i, :n], alone[0], rtol=0, atol=1e-12)


def test_each_direction_trains_only_its_own_recurrent_weights_and_the_shared_embedding():
    encoder = _encoder()
    for direction, other in (("forward", "_reverse"), ("backward", "")):
        encoder.zero_grad(set_to_none=True)
        lm = EncoderLM(encoder, direction).double()
        logits, _ = lm(torch.randint(2, V, (2, 5)))
        logits.logsumexp(-1).sum().backward()
        assert encoder.embedding.weight.grad is not None
        for name, p in encoder.rnn.named_parameters():
            mine = name.endswith("_reverse") == (direction == "backward")
            assert (p.grad is not None) == mine, (direction, name, other)
        # The output matrix is the embedding itself (tied); the projection maps hidden 5 to embedding 6.
        assert lm.head.projection.weight.shape == (6, 5)


def test_a_deep_bidirectional_stack_is_refused_for_pretraining_naming_the_fields():
    with pytest.raises(ValueError, match="num_layers=2"):
        lm_directions(ClassifierConfig(num_layers=2, bidirectional=True))
    assert lm_directions(ClassifierConfig(num_layers=2, bidirectional=False)) == ("forward",)
    assert lm_directions(ClassifierConfig(num_layers=1)) == ("forward", "backward")


@pytest.mark.parametrize("direction, samples", [("forward", 0), ("backward", 0), ("forward", 8), ("backward", 8)])
def test_pretraining_lowers_the_held_out_lm_loss_on_a_toy_corpus(direction, samples):
    torch.manual_seed(0)
    encoder = Encoder(ClassifierConfig(embedding_dim=8, hidden_size=16, embedding_dropout=0.0), V)
    lm = EncoderLM(encoder, direction, dropout=0.0)
    # A corpus with structure to learn: repeated counting sequences with a little noise.
    g = torch.Generator().manual_seed(0)
    ids = (torch.arange(3000) % 11 + 2)
    ids = torch.where(torch.rand(3000, generator=g) < 0.05, torch.randint(2, V, (3000,), generator=g), ids)
    flip = (lambda t: t.flip(0)) if direction == "backward" else (lambda t: t)
    if samples:  # the sampled softmax (8 of 30 words a step) in training; evaluation keeps the full one
        sampler = SampledSoftmax(torch.bincount(ids[:2700], minlength=V), samples)
        task = SampledLanguageModelTask(flip(ids[:2700]), flip(ids[2700:]), 8, 20, unit="word", sampler=sampler)
    else:
        task = LanguageModelTask(flip(ids[:2700]), flip(ids[2700:]), 8, 20, unit="word")
    trainer = Trainer(lm, task, TrainConfig(epochs=3, batch_size=8, lr=1e-2, schedule="stlr", warmup=0.1,
                                            patience=None, progress=False))
    before = trainer.evaluate()["perplexity"]
    result = trainer.fit()
    after = result.best["valid_perplexity"]
    assert before > 0.8 * V  # an untrained model is near uniform over the vocabulary
    assert after < 5.0, (before, after)  # from ~30 (uniform); the noise floor is ~1.7
    assert math.isfinite(after)


def test_sampled_softmax_is_the_full_one_when_the_samples_are_every_word_once():
    torch.manual_seed(0)
    hidden, weight = torch.randn(7, 4, dtype=torch.float64), torch.randn(V, 4, dtype=torch.float64)
    bias, targets = torch.randn(V, dtype=torch.float64), torch.randint(0, V, (7,))
    # Uniform counts: every correction is the same constant and cancels; masking each position's true word among the
    # samples leaves the V - 1 others, so the loss is exactly the full softmax's.
    sampler = SampledSoftmax(torch.ones(V), V)
    loss = sampler.loss(hidden, targets, weight, bias, sampled=torch.arange(V))
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(hidden @ weight.t() + bias, targets))
    # With frequent words drawn more often, their logits are lowered by the log of their expected count.
    skewed = SampledSoftmax(torch.tensor([1000.0] + [1.0] * (V - 1)), 16)
    assert skewed.log_expected[0] > skewed.log_expected[1]
    assert float(skewed.q.sum()) == pytest.approx(1.0)
    assert torch.isfinite(skewed.loss(hidden.float(), targets, weight.float(), bias.float()))


def test_the_default_fine_tuning_trains_every_group_at_one_rate_from_the_first_epoch():
    net = _classifier(layers=2)
    finetune = Finetuning(net, PretrainConfig(pretrain_lm=True), lr=0.01, weight_decay=0.0)
    optimizer = make_optimizer(net, TrainConfig(lr=0.01), finetune.param_groups(net))
    assert {group["lr"] / group.get("lr_scale", 1.0) for group in optimizer.param_groups} == {0.01}
    assert any("lr_scale" in group for group in optimizer.param_groups)  # the default n-gram table took part
    finetune.on_epoch_start(net, 0)
    assert all(p.requires_grad for p in net.parameters())
    assert PretrainConfig().finetune_schedule == "cosine"
