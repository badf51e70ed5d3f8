"""Compiling grammars with llguidance: off the engine thread, bounded, cached.

A compile runs in a small pool (llguidance releases the GIL, so it never stalls the engine or
other requests) and is bounded four ways: the source size, the number of ``$ref``s, llguidance's
own parser limits (lexer fuel, grammar size) and a wall-clock limit; breaking any of them is the
client's 422. llguidance resolves ``$ref`` chains recursively: a chain of ~1000 overflows an 8 MB
thread stack and kills the process (a segfault, not an exception), so the pool's threads get a
large stack and the number of ``$ref``s is capped well below what that stack survives (5000).
Compiled grammars live in an LRU cache keyed by the canonical spec, and a cache entry is the
compile's future, so identical schemas arriving together are compiled once.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import queue
import threading
from dataclasses import dataclass

import llguidance
import llguidance.hf

from ..errors import ValidationError
from ..request.grammar import COMPACT_JSON, JSON, LARK, REGEX, GrammarSpec

log = logging.getLogger("sluice.grammar")



@dataclass(frozen=True)
class GrammarLimits:
    """Bounds on one compile; GRAMMAR_* environment variables in ``config``."""

    max_source_bytes: int = 256 * 1024
    max_refs: int = 1000
    compile_seconds: float = 5.0
    cache_size: int = 128
    workers: int = 2


class CompiledGrammar:
    """A validated grammar and a pristine matcher; every request gets its own copy."""

    def __init__(self, spec: GrammarSpec, matcher: "llguidance.LLMatcher"):
        self.spec = spec
        self._template = matcher

    def new_matcher(self) -> "llguidance.LLMatcher":
        """A fresh matcher at the grammar's start (a cheap copy, no compile)."""
        return self._template.deep_copy()


def llguidance_grammar(spec: GrammarSpec) -> str:
    """The spec as llguidance's grammar text."""
    if spec.kind == JSON:
        return llguidance.LLMatcher.grammar_from_json_schema(spec.source, overrides=COMPACT_JSON)
    if spec.kind == REGEX:
        return llguidance.LLMatcher.grammar_from_regex(spec.source)
    if spec.kind == LARK:
        return llguidance.LLMatcher.grammar_from_lark(spec.source)
    raise ValueError(f"unknown grammar kind {spec.kind!r}")


class GrammarCompiler:
    """Turns ``GrammarSpec`` into ``CompiledGrammar`` for one tokenizer, with TGI-style 422s."""

    def __init__(self, tokenizer: "llguidance.LLTokenizer", limits: GrammarLimits = GrammarLimits()):
        self.tokenizer = tokenizer
        self.limits = limits
        self.parser_limits = llguidance.LLParserLimits(verbose_errors=False)
        self._pool = CompilePool(limits.workers)
        self._cache: collections.OrderedDict[GrammarSpec, concurrent.futures.Future] = collections.OrderedDict()
        self._lock = threading.Lock()

    @classmethod
    def for_tokenizer(cls, hf_tokenizer, vocab_size: int, eos_token_ids, limits: GrammarLimits = GrammarLimits()):
        """Build llguidance's view of a fast HF tokenizer (about a second for a big vocabulary:
        done once, at model load). ``vocab_size`` is the logits width, padding included."""
        eos = sorted(eos_token_ids) or None
        tokenizer = llguidance.hf.from_tokenizer(hf_tokenizer, n_vocab=vocab_size, eos_token=eos)
        return cls(tokenizer, limits)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def compile(self, spec: GrammarSpec) -> CompiledGrammar:
        """The compiled grammar, from the cache or a bounded compile; a 422 when it cannot be."""
        size = len(spec.source.encode())
        if size > self.limits.max_source_bytes:
            raise ValidationError(f"grammar is not valid: the grammar is too large ({size} bytes; "
                                  f"the limit is {self.limits.max_source_bytes})")
        if spec.source.count('"$ref"') > self.limits.max_refs:
            raise ValidationError(f"grammar is not valid: the schema has more than {self.limits.max_refs} `$ref`s")
        future = self._future(spec)
        try:
            return future.result(timeout=self.limits.compile_seconds)
        except concurrent.futures.TimeoutError:
            self._forget(spec, future)
            raise ValidationError(f"grammar is not valid: the grammar is too complex (compiling it took "
                                  f"more than {self.limits.compile_seconds:g} s)") from None
        except ValidationError:
            self._forget(spec, future)
            raise

    def _future(self, spec: GrammarSpec) -> concurrent.futures.Future:
        with self._lock:
            future = self._cache.get(spec)
            if future is not None:
                self._cache.move_to_end(spec)
                return future
            future = self._pool.submit(self._build, spec)
            self._cache[spec] = future
            while len(self._cache) > self.limits.cache_size:
                self._cache.popitem(last=False)
            return future

    def _forget(self, spec: GrammarSpec, future: concurrent.futures.Future) -> None:
        """Failures are not cached: a timeout may pass on a quieter machine."""
        with self._lock:
            if self._cache.get(spec) is future:
                del self._cache[spec]

    def _build(self, spec: GrammarSpec) -> CompiledGrammar:
        """Runs in the pool: validate, build the matcher and its first mask (llguidance builds
        the lexer lazily; doing it here keeps that cost out of the engine's first step)."""
        try:
            text = llguidance_grammar(spec)
        except ValueError as error:
            raise ValidationError(f"grammar is not valid: {error}") from None
        failed, messages = llguidance.LLMatcher.validate_grammar_with_warnings(
            text, self.tokenizer, limits=self.parser_limits)
        if failed:
            raise ValidationError(f"grammar is not valid: {_first_line(messages[0])}")
        matcher = llguidance.LLMatcher(self.tokenizer, text, limits=self.parser_limits)
        matcher.compute_bitmask()
        if matcher.is_error():
            raise ValidationError(f"grammar is not valid: {_first_line(matcher.get_error())}")
        log.info("compiled a %s grammar (%d bytes)", spec.kind, len(spec.source))
        return CompiledGrammar(spec, matcher)


MAX_MESSAGE = 400


def _first_line(message: str) -> str:
    """llguidance's messages can carry a source excerpt on later lines: keep the first line and
    the regex engine's ``error:`` line, which says what is wrong."""
    message = message[:MAX_MESSAGE]  # a regex error quotes the whole regex
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    if not lines:
        return "invalid grammar"
    cause = next((line for line in lines[1:] if line.startswith("error:")), None)
    return f"{lines[0].rstrip(':')}: {cause[len('error:'):].strip()}" if cause else lines[0]


class CompilePool:
    """A few daemon threads with a large stack (virtual memory: only what a compile touches is
    committed), running compiles in submission order."""

    STACK_BYTES = 256 << 20

    def __init__(self, workers: int):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        with _stack_size_lock:
            previous = threading.stack_size(self.STACK_BYTES)
            try:
                for index in range(workers):
                    threading.Thread(target=self._work, name=f"sluice-grammar-{index}", daemon=True).start()
            finally:
                threading.stack_size(previous)

    def submit(self, function, *args) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._jobs.put((future, function, args))
        return future

    def _work(self) -> None:
        while True:
            future, function, args = self._jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(function(*args))
            except BaseException as error:  # handed to the waiting request thread
                future.set_exception(error)


_stack_size_lock = threading.Lock()
