# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 5. From a run to a service
#
# A trained run is a folder: `model/` (the weights in safetensors and a JSON config with the vocabulary, labels and
# tokenizer: nothing is unpickled), `log.jsonl` and `report/`. This tutorial takes one through the verbs that use
# it: `predict`, `serve` and `export` to ONNX, then `predict --runtime onnx`. The command-line verbs are called
# in-process through `rnnkit.cli.main.main` (exactly what the `rnnkit` command runs), so their output lands here.
#
# The classifier is trained on a slice of BBC News for two epochs (`RNNKIT_TUTORIAL_FULL=1`: the whole training set
# and the default training), with random embeddings so it stays small.

# %%
import csv
import os
import tempfile
from pathlib import Path

from fastapi.testclient import TestClient

from rnnkit.api.classifier import CLASSIFIER_TRAIN_DEFAULTS, train_classifier
from rnnkit.cli.main import main as rnnkit
from rnnkit.data.bundled import load_bundled
from rnnkit.serve import create_app
from rnnkit.training.config import TrainConfig

FULL = os.environ.get("RNNKIT_TUTORIAL_FULL") == "1"
work = Path(tempfile.mkdtemp(prefix="rnnkit-tutorial-"))
bbc = load_bundled("bbc-news")


def write_csv(path, examples):
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "text"])
        writer.writerows((ex.label, ex.text if FULL else ex.text[:600]) for ex in examples)


write_csv(work / "train.csv", bbc.train if FULL else bbc.train[::3])
write_csv(work / "test.csv", bbc.test)
train = TrainConfig(**CLASSIFIER_TRAIN_DEFAULTS) if FULL else TrainConfig(epochs=2, progress=False)
classifier, summary = train_classifier(str(work / "train.csv"), work / "news", train=train,
                                       test_data=str(work / "test.csv"), embeddings="random")
print(sorted(p.name for p in (work / "news").iterdir()), sorted(p.name for p in (work / "news" / "model").iterdir()))

# %% [markdown]
# ## rnnkit predict
#
# Texts as arguments (or one per line on stdin); `--top-k` labels each, `--json` for machines.

# %%
rnnkit(["predict", str(work / "news"), "Shares fell after the rate rise", "The striker scored twice", "--top-k", "2"])

# %% [markdown]
# ## rnnkit serve
#
# `rnnkit serve RUN` starts uvicorn on 127.0.0.1:8000 with the HTTP API, the explorer page at `/` and the API's own
# documentation at `/docs`. The same application is `rnnkit.serve.create_app`; here FastAPI's `TestClient` runs it
# in this process and sends one request, as a client would over HTTP.

# %%
with TestClient(create_app({"news": str(work / "news")})) as client:
    print(client.get("/v1/models").json())
    response = client.post("/v1/classify", json={"model": "news", "texts": ["Shares fell after the rate rise"],
                                                 "top_k": 2})
    print(response.status_code, response.json())

# %% [markdown]
# ## Export to ONNX and predict on ONNX Runtime
#
# `rnnkit export` writes the whole model as one ONNX graph (the recurrent layers as ONNX's own RNN/GRU/LSTM
# operators, dynamic batch and length) and `model.json` beside it (vocabulary, tokenizer settings, labels), checks
# it against the PyTorch model on random batches, and refuses to write anything above a max abs difference of
# 1e-5. `--runtime onnx` runs the same verbs on ONNX Runtime.

# %%
rnnkit(["export", str(work / "news"), "--format", "onnx"])
rnnkit(["predict", str(work / "news"), "Shares fell after the rate rise", "--top-k", "2", "--runtime", "onnx"])
