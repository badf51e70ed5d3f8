"""The real Flask app, driver, protocols and service over a fake engine and a character tokenizer,
so protocol behaviour is checked in milliseconds, without a model (the unit tier).

The real-process contract tests (gunicorn, real clients, real models) stay the authority on the
wire; these pin what every dialect must share, fault by fault.
"""

from __future__ import annotations

import itertools
import threading
import time
from types import SimpleNamespace

from sluice.config import Config, TokenLimits
from sluice.engines.base import Choice
from sluice.http.app import create_app
from sluice.request import RequestLimits
from sluice.serving.adapters import AdapterRegistry
from sluice.serving.metrics import Metrics
from sluice.serving.response_cache import ResponseCache
from sluice.serving.service import GenerationService
from sluice.serving.validation import Validator
from sluice.text.events import Finish, Token, TokenEvent

MAX_TOTAL_TOKENS = 128


class CharTokenizer:
    """One token per character (id = code point); its chat template joins the messages."""

    chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}"
    all_special_ids = [0]

    def __call__(self, text, add_special_tokens=True, return_offsets_mapping=False):
        ids = [ord(c) for c in text]
        return {"input_ids": ids, "offset_mapping": [(i, i + 1) for i in range(len(ids))]}

    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=True, **extra):
        return "".join(m.get("content") or "" for m in messages) + "\n"


class FakeText:
    """The fake engine's text stage: token i reads `` t{i}`` (`` <adapter>-t{i}`` with an adapter);
    the last one carries the finish."""

    def __init__(self, count: int, word: str = "t"):
        self.count, self.word, self.seen, self.finished, self.closed = count, word, 0, False, False

    def add(self, sequence, choice, now=None) -> TokenEvent:
        self.seen += 1
        index, finish = self.seen, None
        if index == self.count:
            self.finished = True
            finish = Finish("".join(f" {self.word}{i}" for i in range(1, self.count + 1)), "length", self.count, None,
                            sequence.valid.input_length, (), 0.0, 0.0)
        return TokenEvent(index, Token(index, f" {self.word}{index}", choice.logprob, False), (), finish)


class FakeEngine:
    """Answers each sequence with ``max_new_tokens`` tokens ``t1 t2 ...`` (``<adapter>-t1 ...``
    for a request with a LoRA adapter, so a test sees which one answered), one step of its sink
    per token, as an engine hands over its steps.

    ``release_at=n`` holds every answer until n sequences are waiting at once: a request whose
    prompts are not submitted together never finishes. ``fail`` makes each sequence fail after
    its first token, as a failed model step would.
    """

    steps_on_this_cpu = False

    def __init__(self, release_at: int = 1, fail: Exception | None = None):
        self.release_at, self.fail = release_at, fail
        self.pending: list = []
        self.submitted: list = []  # every validated request, in submission order
        self.cancelled: list = []
        self.adapters: dict = {}  # uid -> the AdapterSpec registered
        self.ended_sessions: list = []
        self.lock = threading.Lock()
        self.stats = SimpleNamespace(queue_size=0, batch_size=0, batch_tokens=0)
        self.sink = None
        self._ids = itertools.count(1)

    def deliver_to(self, sink) -> None:
        self.sink = sink

    def submit(self, valid, seed=None):
        now = time.monotonic()
        word = f"{valid.adapter.name}-t" if valid.adapter is not None else "t"
        sequence = SimpleNamespace(valid=valid, text=FakeText(valid.max_new_tokens, word), queued_at=now,
                                   started_at=now, prefill=(), seed=None, id=next(self._ids))
        with self.lock:
            self.submitted.append(valid)
            self.pending.append(sequence)
            if len(self.pending) >= self.release_at:
                for waiting in self.pending:
                    self._answer(waiting)
                self.pending = []
        return sequence

    def _answer(self, sequence) -> None:
        for index in range(1, sequence.valid.max_new_tokens + 1):
            if self.fail is not None and index == 2:
                self.sink.fail([sequence], self.fail)
                return
            self.sink.publish([(sequence, [Choice(index, -0.5)])])

    def cancel(self, sequence) -> None:
        self.cancelled.append(sequence)

    def release(self, sequence) -> None:
        pass

    def healthy(self) -> bool:
        return True

    def describe(self) -> dict:
        return {"engine": "fake", "model_dtype": "float32", "model_device_type": "cpu",
                "max_batch_total_tokens": 1024, "max_batch_prefill_tokens": 512, "max_batch_size": None}

    @staticmethod
    def check_request(request) -> None:
        pass

    def add_adapter(self, spec) -> dict:
        self.adapters[spec.ref.uid] = spec
        return {"rank": 8, "loaded": spec.preload or spec.pinned}

    def remove_adapter(self, ref) -> None:
        del self.adapters[ref.uid]

    def adapter_loaded(self, ref) -> bool:
        spec = self.adapters.get(ref.uid)
        return spec is not None and (spec.preload or spec.pinned)

    def end_session(self, session_id: str) -> None:
        self.ended_sessions.append(session_id)


def fake_service(engine: FakeEngine | None = None, slots: int = 8, request_timeout: float = 30.0,
                 chat_template: str | None = CharTokenizer.chat_template,
                 cache: ResponseCache | None = None, workers: int = 1) -> GenerationService:
    """The real generation service over ``engine`` (a plain FakeEngine by default); ``workers``:
    how many gunicorn workers its adapter registry believes there are."""
    tokenizer = CharTokenizer()
    tokenizer.chat_template = chat_template
    validator = Validator(tokenizer, TokenLimits(max_input_tokens=64, max_total_tokens=MAX_TOTAL_TOKENS), 4)
    engine = engine or FakeEngine()
    return GenerationService(engine, validator, RequestLimits(), slots, request_timeout, cache=cache,
                             metrics=Metrics(), model_name="fake-model",
                             adapters=AdapterRegistry(engine, ("fake-model",), workers=workers))


def in_process_client(engine: FakeEngine | None = None, slots: int = 8, request_timeout: float = 30.0,
                      chat_template: str | None = CharTokenizer.chat_template, cache: ResponseCache | None = None,
                      api_key: str | None = None, workers: int = 1):
    """A Flask test client over the real app, serving ``engine`` (a plain FakeEngine by default)."""
    service = fake_service(engine, slots, request_timeout, chat_template, cache, workers)
    host = SimpleNamespace(service=service, error=None, compute_type="cpu")
    return create_app(host, Config(model_id="fake-model", api_key=api_key)).test_client()
