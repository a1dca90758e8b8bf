"""The n-gram table's sparse path: gradients equal to the dense table's, clipping that counts them, lazy row
updates beside AdamW, and a resumed run that ends bit-identical to one never stopped."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim import AdamW

from rnnkit.models.classifier import RNNClassifier
from rnnkit.models.config import ClassifierConfig
from rnnkit.models.ngrams import NgramBag
from rnnkit.training import StepResult, TrainConfig, Trainer, make_optimizer, parameter_groups
from rnnkit.training.schedule import make_scheduler
from rnnkit.training.sparse import SplitAdam, clip_grad_norm
from tests.robustness.test_resume import _saving_each_state, _strip

VOCAB, BUCKETS = 30, 17


def _bags(dim=3):
    """The same random table twice, float64: sparse and dense gradients."""
    torch.manual_seed(0)
    sparse, dense = NgramBag(VOCAB, BUCKETS, dim).double(), NgramBag(VOCAB, BUCKETS, dim, sparse=False).double()
    dense.load_state_dict(sparse.state_dict())
    return sparse, dense


def _loss(bag, ids, lengths):
    target = torch.arange(ids.shape[0] * bag.table.weight.shape[1], dtype=torch.float64).view(ids.shape[0], -1)
    return ((bag(ids, lengths) - target.sin()) ** 2).sum()


def test_sparse_gradient_equals_dense_and_ignores_padding():
    sparse, dense = _bags()
    # Repeated n-grams (3 7 3 7) make rows appear several times in the sparse gradient before coalescing.
    ids, lengths = torch.tensor([[3, 7, 3, 7, 0, 0], [5, 6, 7, 8, 9, 2]]), torch.tensor([4, 6])
    _loss(sparse, ids, lengths).backward()
    _loss(dense, ids, lengths).backward()
    assert sparse.table.weight.grad.is_sparse and not dense.table.weight.grad.is_sparse
    torch.testing.assert_close(sparse.table.weight.grad.to_dense(), dense.table.weight.grad, rtol=0, atol=1e-12)
    # Garbage past the length (even ids outside the table) gives the same gradient.
    padded = sparse.table.weight.grad.to_dense().clone()
    sparse.table.weight.grad = None
    garbage = torch.tensor([[3, 7, 3, 7, 10**6, -4], [5, 6, 7, 8, 9, 2]])
    _loss(sparse, garbage, lengths).backward()
    torch.testing.assert_close(sparse.table.weight.grad.to_dense(), padded, rtol=0, atol=1e-12)


@pytest.mark.parametrize("max_norm", [1e-3, 1e3])
def test_clip_grad_norm_counts_sparse_gradients_as_their_dense_form(max_norm):
    sparse, dense = _bags()
    head_s, head_d = nn.Linear(3, 2).double(), nn.Linear(3, 2).double()
    head_d.load_state_dict(head_s.state_dict())
    ids, lengths = torch.tensor([[3, 7, 3, 7, 3], [9, 9, 9, 1, 0]]), torch.tensor([5, 4])
    for bag, head in ((sparse, head_s), (dense, head_d)):
        head(bag(ids, lengths)).square().sum().backward()
    ours = clip_grad_norm([*sparse.parameters(), *head_s.parameters()], max_norm)
    torch_s = torch.nn.utils.clip_grad_norm_([*dense.parameters(), *head_d.parameters()], max_norm)
    torch.testing.assert_close(ours, torch_s, rtol=1e-12, atol=0)
    torch.testing.assert_close(sparse.table.weight.grad.to_dense(), dense.table.weight.grad, rtol=1e-12, atol=0)
    torch.testing.assert_close(head_s.weight.grad, head_d.weight.grad, rtol=1e-12, atol=0)


def _net(ngrams="logits"):
    torch.manual_seed(0)
    config = ClassifierConfig(embedding_dim=6, hidden_size=5, ngrams=ngrams, ngram_buckets=BUCKETS, ngram_dim=4,
                              backend="reference")
    return RNNClassifier(config, vocab_size=VOCAB, num_classes=3, pad_id=0)


def test_table_gets_a_lazy_group_and_the_rest_is_plain_adamw():
    net, twin = _net(), _net()
    groups = {g["name"]: g for g in parameter_groups(net, 0.1)}
    assert groups["sparse"]["params"] == [net.ngrams.table.weight] and groups["sparse"]["weight_decay"] == 0.0
    optimizer = make_optimizer(net, TrainConfig(lr=0.01, weight_decay=0.1))
    assert isinstance(optimizer, SplitAdam)
    assert [g["name"] for g in optimizer.param_groups] == ["decay", "no_decay", "sparse"]
    # The dense parameters move exactly as under a plain AdamW, the table as under a SparseAdam of its own (only in
    # the rows the batch used): one optimizer to the trainer, the same steps as the two side by side.
    twin_groups = parameter_groups(twin, 0.1)
    dense = AdamW([g for g in twin_groups if g["name"] != "sparse"], lr=0.01)
    lazy = torch.optim.SparseAdam([twin.ngrams.table.weight], lr=0.01 * twin.config.ngram_lr_scale)
    ids, lengths, labels = torch.tensor([[3, 7, 9, 0], [4, 5, 0, 0]]), torch.tensor([3, 2]), torch.tensor([0, 2])
    before = net.ngrams.table.weight.detach().clone()
    for _ in range(3):
        for model, opts in ((net, [optimizer]), (twin, [dense, lazy])):
            torch.manual_seed(1)  # the same dropout masks for both
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(ids, lengths), labels).backward()
            for opt in opts:
                opt.step()
    for (name, a), b in zip(net.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b), name
    moved = (net.ngrams.table.weight != before).any(1).nonzero().flatten().tolist()
    used = {3, 7, 9, 4, 5} | {VOCAB + int(b) % BUCKETS for b in (3 * 1_000_003 + 7, 7 * 1_000_003 + 9,
                                                                 4 * 1_000_003 + 5)}
    assert set(moved) == used


def test_ngram_lr_scale_sets_the_table_group_rate_and_the_schedule_keeps_the_ratio():
    torch.manual_seed(0)
    net = RNNClassifier(ClassifierConfig(ngrams="logits", ngram_buckets=BUCKETS, ngram_lr_scale=10.0), VOCAB, 3)
    config = TrainConfig(lr=0.002, warmup=0)
    optimizer = make_optimizer(net, config)
    rates = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert rates == {"decay": 0.002, "no_decay": 0.002, "sparse": pytest.approx(0.02)}
    scheduler = make_scheduler(optimizer, config, total_steps=10)
    for _ in range(5):
        optimizer.step()  # no gradients: nothing moves, only the schedule advances
        scheduler.step()
    lrs = [g["lr"] for g in optimizer.param_groups]
    assert lrs[2] == pytest.approx(10 * lrs[0]) and lrs[0] < 0.002
    with pytest.raises(ValueError, match="ngram_lr_scale must be a positive number, got 0"):
        ClassifierConfig(ngram_lr_scale=0)


def test_split_adam_refuses_a_plain_adamw_state():
    net = _net()
    optimizer = make_optimizer(net, TrainConfig())
    with pytest.raises(ValueError, match="not a SplitAdam state"):
        optimizer.load_state_dict(AdamW(nn.Linear(2, 2).parameters()).state_dict())


class TokenTask:
    """Random token sequences whose class is the first token mod 3; batches reshuffled from the global RNG."""

    monitor, mode = "accuracy", "max"

    def __init__(self):
        generator = torch.Generator().manual_seed(3)
        self.ids = torch.randint(1, VOCAB, (96, 6), generator=generator)
        self.lengths = torch.randint(2, 7, (96,), generator=generator)
        self.y = self.ids[:, 0] % 3

    def train_batches(self, epoch):
        order = torch.randperm(80)
        return [order[i:i + 16] for i in range(0, 80, 16)]

    def train_step(self, model, batch):
        logits = model(self.ids[batch], self.lengths[batch])
        return StepResult(loss=F.cross_entropy(logits, self.y[batch]), tokens=len(batch), examples=len(batch))

    def evaluate(self, model, split):
        logits = model(self.ids[80:], self.lengths[80:])
        return {"accuracy": float((logits.argmax(1) == self.y[80:]).float().mean())}


@pytest.mark.parametrize("ngrams", ["none", "logits", "features"])
def test_run_with_sparse_table_resumes_bit_identical(tmp_path, ngrams):
    config = TrainConfig(epochs=3, lr=0.05, eval_every=4, patience=None, progress=False, checkpoint_every="4")
    reference = _net(ngrams)
    expected = Trainer(reference, TokenTask(), config).fit()
    trainer = Trainer(_net(ngrams), TokenTask(), config, state_path=tmp_path / "state.pt")
    saved = _saving_each_state(trainer, tmp_path / "state.pt")
    trainer.fit()
    assert len(saved) == 3
    for state in saved:
        if ngrams != "none":
            assert set(state["optimizer"]) == {"dense", "sparse"} and state["optimizer"]["sparse"]["state"]
        model = _net(ngrams)
        resumed = Trainer(model, TokenTask(), config)
        resumed.load_state_dict(state)
        result = resumed.fit()
        at = state["trainer"]["step"]
        assert _strip(result.history) == _strip(expected.history), at
        for a, b in zip(model.state_dict().values(), reference.state_dict().values(), strict=True):
            assert torch.equal(a, b), at
