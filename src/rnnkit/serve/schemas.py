"""Request and response bodies: what the OpenAPI schema at /openapi.json describes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rnnkit.generation.config import MAX_TOKENS, TEMPERATURE
from rnnkit.layers.trace import SERIES
from rnnkit.saved.kinds import CLASSIFIER, LANGUAGE_MODEL

# The series a trace of the built-in cells can hold (rnnkit.layers.trace.SERIES): the schema lists them as an enum.
SeriesName = Literal[tuple(SERIES)]


class _Strict(BaseModel):
    # An unknown field is a typo the client should hear about, not something silently ignored.
    model_config = ConfigDict(extra="forbid")


class ClassifyRequest(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"texts": ["The striker scored twice before half time."], "top_k": 2, "probabilities": True}]})
    texts: list[str] = Field(..., min_length=1, description="texts to classify (one prediction each)")
    model: str | None = Field(None, description="a served classifier's name (default: the first one)")
    top_k: int = Field(1, ge=1, description="labels to return per text, most likely first")
    probabilities: bool = Field(False, description="also return every label's probability")


class LabelScore(BaseModel):
    label: str
    probability: float


class Classification(BaseModel):
    labels: list[LabelScore]
    probabilities: dict[str, float] | None = None


class ClassifyResponse(BaseModel):
    model: str
    results: list[Classification]


class GenerateRequest(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"prompt": "Thou art", "max_tokens": 40, "temperature": 0.8, "seed": 1, "stream": False}]})
    prompt: str = Field("", description="text to prime the model with (not repeated in the output)")
    model: str | None = Field(None, description="a served language model's name (default: the first one)")
    max_tokens: int = Field(MAX_TOKENS, ge=1, description="tokens to sample at most")
    temperature: float = Field(TEMPERATURE, ge=0, le=100, description="softmax temperature; 0 is greedy")
    top_k: int | None = Field(None, ge=1, description="sample among the k most likely tokens only")
    top_p: float | None = Field(None, gt=0, le=1, description="nucleus sampling: the smallest set with mass ≥ p")
    stop: str | None = Field(None, min_length=1, description="stop before this string would appear")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="seed for a reproducible sample")
    stream: bool = Field(True, description="Server-Sent Events, one 'token' event per piece, then 'done'")


class GenerateResponse(BaseModel):
    model: str
    text: str
    tokens: int
    finish_reason: Literal["length", "stop", "timeout"]


class InspectRequest(_Strict):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"text": "The striker scored", "include": ["h"], "span": [1, 3]}]})
    text: str = Field(..., min_length=1, description="text to read, token by token")
    model: str | None = Field(None, description="a served model's name (default: the first one served)")
    include: list[SeriesName] | None = Field(None, description="series to return (default: h, c and every gate)")
    top_k: int = Field(10, ge=1, le=100, description="language models: next-token candidates shown per step")
    span: tuple[int, int] | None = Field(None, description="token span [start, end) for the LSTMVis-style unit "
                                                           "search on the first layer's forward h")
    threshold: float = Field(0.3, ge=-1, le=1, description="a unit is 'on' above this value (span search)")


class ModelInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    kind: Literal[CLASSIFIER, LANGUAGE_MODEL]  # the saved-model kinds (saved/kinds.py): a new kind appears here


class ModelsResponse(BaseModel):
    models: list[ModelInfo]


class ErrorDetail(BaseModel):
    field: str | None = None
    message: str


class ErrorInfo(BaseModel):
    status: int
    code: str
    message: str
    details: list[ErrorDetail] = []
    request_id: str | None = None


class ErrorResponse(BaseModel):
    error: ErrorInfo


ERROR_RESPONSES = {status: {"model": ErrorResponse, "description": text} for status, text in (
    (400, "bad request (invalid JSON, a model of the wrong kind)"), (404, "no such model"),
    (413, "body or text too large"), (422, "a field is invalid"), (503, "busy or shutting down"),
    (504, "timed out"))}
