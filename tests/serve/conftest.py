"""Tiny models trained once per session (about a second each): an LSTM classifier on generated topic sentences
and a character LSTM language model, saved as the usual self-contained checkpoint folders.

They are fitted with a plain loop rather than ``train_classifier`` / ``train_language_model``: those also write
reports and plots, which would cost most of this suite's time and is tested in tests/pipelines.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from rnnkit.api.classifier import Classifier
from rnnkit.api.language_model import LanguageModel
from rnnkit.data import CharTokenizer, Vocabulary, WordTokenizer, pad_batch
from rnnkit.models.classifier import RNNClassifier
from rnnkit.models.config import ClassifierConfig, LanguageModelConfig
from rnnkit.models.language_model import RNNLanguageModel
from rnnkit.training import TrainConfig, make_optimizer
from tests.helpers import SONNET
from tests.pipelines.conftest import make_texts


def _fit(net, loss_of, batches, lr: float = 1e-2) -> None:
    # rnnkit's optimizer: the classifier's n-gram table has a sparse gradient, which torch's Adam refuses.
    optimiser = make_optimizer(net, TrainConfig(lr=lr, weight_decay=0.0))
    net.train()
    for batch in batches:
        optimiser.zero_grad()
        loss_of(batch).backward()
        optimiser.step()
    net.eval()


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory):
    torch.manual_seed(0)
    rows = make_texts(240, 0)
    tokenizer = WordTokenizer()
    labels = sorted({label for label, _ in rows})
    vocab = Vocabulary.build([tokenizer.tokenize(text) for _, text in rows])
    # An LSTM, bidirectional, two layers: every view of the explorer (c, four gates, two directions) has data.
    config = ClassifierConfig(cell="lstm", embedding_dim=12, hidden_size=10, num_layers=2, bidirectional=True,
                              embedding_dropout=0.0, dropout=0.0)
    net = RNNClassifier(config, len(vocab), len(labels), vocab.pad_id)
    ids = [vocab.encode(tokenizer.tokenize(text)) for _, text in rows]
    targets = torch.tensor([labels.index(label) for label, _ in rows])
    batches = [range(i, i + 30) for _ in range(8) for i in range(0, 240, 30)]

    def loss_of(batch):
        x, lengths = pad_batch([ids[i] for i in batch], vocab.pad_id)
        return F.cross_entropy(net(x, lengths), targets[list(batch)])

    _fit(net, loss_of, batches)
    folder = tmp_path_factory.mktemp("serve-clf") / "news"
    Classifier(net, tokenizer, vocab, labels, None).save(folder / "model")
    return folder


@pytest.fixture(scope="session")
def lm_dir(tmp_path_factory):
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    vocab = Vocabulary.build([tokenizer.tokenize(SONNET)])
    net = RNNLanguageModel(LanguageModelConfig(cell="lstm", embedding_dim=8, hidden_size=24, num_layers=2,
                                               dropout=0.0), len(vocab), vocab.pad_id)
    stream = torch.tensor(vocab.encode(tokenizer.tokenize(SONNET)))[:2400].view(8, -1)
    windows = [stream[:, i:i + 33] for _ in range(6) for i in range(0, stream.shape[1] - 33, 32)]

    def loss_of(window):
        logits, _ = net(window[:, :-1])
        return F.cross_entropy(logits.reshape(-1, len(vocab)), window[:, 1:].reshape(-1))

    _fit(net, loss_of, windows)
    folder = tmp_path_factory.mktemp("serve-lm") / "poet"
    LanguageModel(net, tokenizer, vocab).save(folder / "model")
    return folder


@pytest.fixture(scope="session")
def mingru_lm_dir(tmp_path_factory):
    """An untrained character minGRU language model: its trace holds the minimal cells' own series (z, cand)."""
    torch.manual_seed(0)
    tokenizer = CharTokenizer()
    vocab = Vocabulary.build([tokenizer.tokenize(SONNET)])
    net = RNNLanguageModel(LanguageModelConfig(cell="mingru", embedding_dim=8, hidden_size=6, num_layers=2,
                                               dropout=0.0), len(vocab), vocab.pad_id).eval()
    folder = tmp_path_factory.mktemp("serve-mingru") / "mini"
    LanguageModel(net, tokenizer, vocab).save(folder / "model")
    return folder


@pytest.fixture
def anyio_backend():
    return "asyncio"


def client_for(app):
    """An httpx client that calls the ASGI app in-process (no socket)."""
    import httpx

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rnnkit.test")


@pytest.fixture(scope="session")
def live_server(classifier_dir, lm_dir):
    """uvicorn on a free loopback port, in a thread of this process; yields its base URL."""
    import threading
    import time

    import uvicorn

    from rnnkit.serve import ServeConfig, create_app

    # Small limits keep every request of the schema fuzz run short.
    config = ServeConfig(max_texts=16, max_chars=500, max_input_tokens=100, max_inspect_tokens=40,
                         max_generate_tokens=80, timeout_s=10)
    app = create_app({"news": str(classifier_dir), "poet": str(lm_dir)}, config)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start within 30 s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=30)


# Text and a label that end a <script> element early or put the HTML parser in its script-escaped state, and
# that matplotlib would read as (broken) mathtext.
HOSTILE_TEXT = "team <!--<script> goal </script> win & <b>bank</b> $\\frac{$ $x^$"
HOSTILE_LABEL = "</script><!--<script>$\\frac$"


@pytest.fixture(scope="session")
def hostile_classifier_dir(classifier_dir, tmp_path_factory):
    """The tiny classifier with its first label renamed to HOSTILE_LABEL."""
    clf = Classifier.load(classifier_dir)
    folder = tmp_path_factory.mktemp("serve-hostile") / "hostile"
    Classifier(clf.model, clf.tokenizer, clf.vocab, [HOSTILE_LABEL, *clf.labels[1:]], clf.max_length).save(
        folder / "model")
    return folder
