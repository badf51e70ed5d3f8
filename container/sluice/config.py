"""Server configuration, parsed once from the environment at start-up.

SageMaker and JumpStart configure the container only through environment variables (values always
arrive as strings, e.g. ``SM_NUM_GPUS="4"``), and JumpStart sets many that a TGI container ignores
(``SAGEMAKER_PROGRAM``, ``ENDPOINT_SERVER_TIMEOUT``...): unknown names are ignored here too.
Contradictory values stop the server at start with one clear line, as TGI's launcher does.
Handlers never read ``os.environ``; they get this frozen object.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from typing import Mapping

# Names of the environment variables, in one place.
HF_MODEL_ID = "HF_MODEL_ID"
HF_MODEL_REVISION = "HF_MODEL_REVISION"
HF_MODEL_TRUST_REMOTE_CODE = "HF_MODEL_TRUST_REMOTE_CODE"
HF_MODEL_QUANTIZE = "HF_MODEL_QUANTIZE"
SM_NUM_GPUS = "SM_NUM_GPUS"
MAX_INPUT_TOKENS = "MAX_INPUT_TOKENS"
MAX_INPUT_LENGTH = "MAX_INPUT_LENGTH"  # legacy name of MAX_INPUT_TOKENS
MAX_TOTAL_TOKENS = "MAX_TOTAL_TOKENS"
MAX_STOP_SEQUENCES = "MAX_STOP_SEQUENCES"
MAX_TOP_N_TOKENS = "MAX_TOP_N_TOKENS"
MAX_BEST_OF = "MAX_BEST_OF"
MAX_CONCURRENT_REQUESTS = "MAX_CONCURRENT_REQUESTS"
MAX_BATCH_PREFILL_TOKENS = "MAX_BATCH_PREFILL_TOKENS"
MAX_BATCH_TOTAL_TOKENS = "MAX_BATCH_TOTAL_TOKENS"
MAX_BATCH_SIZE = "MAX_BATCH_SIZE"
DEFAULT_MAX_NEW_TOKENS = "DEFAULT_MAX_NEW_TOKENS"
SAGEMAKER_BIND_TO_PORT = "SAGEMAKER_BIND_TO_PORT"
SAGEMAKER_MODEL_SERVER_TIMEOUT = "SAGEMAKER_MODEL_SERVER_TIMEOUT"
SAGEMAKER_MODEL_SERVER_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"
PAYLOAD_LIMIT = "PAYLOAD_LIMIT"
API_KEY = "API_KEY"
DTYPE = "DTYPE"
SLUICE_DEVICE = "SLUICE_DEVICE"
SLUICE_TORCH_THREADS = "SLUICE_TORCH_THREADS"
SLUICE_PACK_WEIGHTS = "SLUICE_PACK_WEIGHTS"  # 0: plain nn.Linear on CPU
SLUICE_FUSED_PREFILL = "SLUICE_FUSED_PREFILL"  # 0: prefill chunks and decode steps take turns
SLUICE_WARMUP = "SLUICE_WARMUP"  # 0: the native engine serves without its warm-up passes
RESPONSE_CACHE_SIZE = "RESPONSE_CACHE_SIZE"
COMPUTE_TYPE = "COMPUTE_TYPE"
SSE_KEEPALIVE_SECONDS = "SSE_KEEPALIVE_SECONDS"
SLUICE_ENGINE = "SLUICE_ENGINE"
SLUICE_VLLM_ENFORCE_EAGER = "SLUICE_VLLM_ENFORCE_EAGER"
DISABLE_GRAMMAR_SUPPORT = "DISABLE_GRAMMAR_SUPPORT"  # TGI's name
GRAMMAR_COMPILE_TIMEOUT = "GRAMMAR_COMPILE_TIMEOUT"  # seconds
GRAMMAR_MAX_BYTES = "GRAMMAR_MAX_BYTES"
SLUICE_HOST = "SLUICE_HOST"  # the address gunicorn binds
SLUICE_ACCESS_LOG = "SLUICE_ACCESS_LOG"
SLUICE_LOG_LEVEL = "SLUICE_LOG_LEVEL"
SLUICE_NO_APP = "SLUICE_NO_APP"  # `inference` imported without building the app (tests)
SERVED_MODEL_NAME = "SERVED_MODEL_NAME"  # the model's name in OpenAI answers (vLLM's --served-model-name)
LORA_ADAPTERS = "LORA_ADAPTERS"  # TGI's: adapters registered at start-up, `name=path` or `path`, comma-separated
MAX_LORA_ADAPTERS = "MAX_LORA_ADAPTERS"  # adapters loaded at once; 0: no adapters
MAX_LORA_RANK = "MAX_LORA_RANK"
# Stateful sessions (SageMaker's 2026 contract; the first and third names are the standards package's).
SAGEMAKER_ENABLE_STATEFUL_SESSIONS = "SAGEMAKER_ENABLE_STATEFUL_SESSIONS"
SESSION_TTL_SECONDS = "SESSION_TTL_SECONDS"
SAGEMAKER_SESSIONS_EXPIRATION = "SAGEMAKER_SESSIONS_EXPIRATION"  # the standards package's name for the TTL
SAGEMAKER_SESSIONS_PATH = "SAGEMAKER_SESSIONS_PATH"  # the session store's directory, shared by the workers
WATERMARK_GAMMA = "WATERMARK_GAMMA"  # TGI's: the greenlist's share of the vocabulary
WATERMARK_DELTA = "WATERMARK_DELTA"  # TGI's: the bias added to greenlist logits

SAGEMAKER_MODEL_DIR = "/opt/ml/model"
SAGEMAKER_PAYLOAD_LIMIT = 6 * 1024 * 1024  # InvokeEndpoint's own body limit
DTYPES = ("auto", "float32", "float16", "bfloat16", "float64")
DEVICES = ("auto", "cpu", "cuda")
QUANTIZATIONS = ("bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4")
# `auto`: vllm when it is importable and a CUDA device is present, else the native engine (engines/registry).
ENGINES = ("auto", "sluice", "vllm")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")  # gunicorn's
DEFAULT_HOST = "0.0.0.0"
DEFAULT_MAX_LORA_RANK = 16  # vLLM's and LMI's default


class ConfigError(ValueError):
    """A configuration the server cannot start with; the message is one line for the log."""


def _number(env: Mapping[str, str], name: str, convert, kind: str) -> tuple[str, int | float | None]:
    """The variable as written and as ``convert`` (``int`` or ``float``) reads it; None when unset."""
    raw = env.get(name, "").strip()
    if raw == "":
        return raw, None
    try:
        return raw, convert(raw)
    except ValueError:
        raise ConfigError(f"{name} must be {kind}. Given: {raw!r}") from None


def _int(env: Mapping[str, str], name: str, default: int | None, minimum: int = 0) -> int | None:
    _, value = _number(env, name, int, "an integer")
    if value is None:
        return default
    if value < minimum:
        raise ConfigError(f"{name} must be >= {minimum}. Given: {value}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false. Given: {raw!r}")


def _float(env: Mapping[str, str], name: str, default: float, above: float, below: float = float("inf")) -> float:
    """A number strictly between ``above`` and ``below``."""
    raw, value = _number(env, name, float, "a number")
    if value is None:
        return default
    if not above < value < below:
        bound = f"> {above:g}" if below == float("inf") else f"> {above:g} and < {below:g}"
        raise ConfigError(f"{name} must be {bound}. Given: {raw}")
    return value


def _session_settings(env: Mapping[str, str]) -> dict:
    """Stateful sessions: on/off, their lifetime (``SESSION_TTL_SECONDS``, else the standards
    package's ``SAGEMAKER_SESSIONS_EXPIRATION``, else 20 minutes) and where the store lives."""
    ttl = _int(env, SESSION_TTL_SECONDS, None, minimum=1) or _int(env, SAGEMAKER_SESSIONS_EXPIRATION, 1200, minimum=1)
    return {"stateful_sessions": _bool(env, SAGEMAKER_ENABLE_STATEFUL_SESSIONS, False),
            "session_ttl_seconds": ttl,
            "sessions_path": env.get(SAGEMAKER_SESSIONS_PATH, "").strip() or None}


def _optional_bool(env: Mapping[str, str], name: str) -> bool | None:
    """A tri-state flag: unset means "let the engine choose by device"."""
    return _bool(env, name, False) if env.get(name, "").strip() else None


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(name, "").strip().lower() or default
    if raw not in choices:
        raise ConfigError(f"{name} must be one of {', '.join(choices)}. Given: {raw!r}")
    return raw


def _process_settings(env: Mapping[str, str]) -> dict:
    """How the server process runs (bind address, logs), read here like every other variable."""
    return {"host": env.get(SLUICE_HOST, "").strip() or DEFAULT_HOST,
            "access_log": _bool(env, SLUICE_ACCESS_LOG, False),
            "log_level": _choice(env, SLUICE_LOG_LEVEL, LOG_LEVELS, "info")}


def app_disabled(env: Mapping[str, str] | None = None) -> bool:
    """``SLUICE_NO_APP=1``: import ``inference`` without building the app (no config needed)."""
    return (os.environ if env is None else env).get(SLUICE_NO_APP) == "1"


def looks_like_path(value: str) -> bool:
    """A value no hub id can be (hub ids are ``name`` or ``org/name``): a typo'd path, not a repo."""
    return value.startswith(("/", "./", "../", "~")) or value.count("/") > 1 or value.endswith("/")


def resolve_model_id(value: str) -> str:
    """An existing path becomes an absolute directory, resolved against the current directory.

    ``container/serve`` resolves it before gunicorn's ``--chdir`` (a relative directory would
    otherwise be looked up in ``container/`` and then tried as a hub id, with a minute of
    retries). A path-like value that does not exist fails here, at once.
    """
    if not value:
        if not os.path.isdir(SAGEMAKER_MODEL_DIR):
            raise ConfigError(f"{HF_MODEL_ID} must be set (a model directory or a hub id); "
                              f"{SAGEMAKER_MODEL_DIR} does not exist")
        return SAGEMAKER_MODEL_DIR
    path = os.path.expanduser(value)
    if os.path.isdir(path):
        return os.path.abspath(path)
    if os.path.exists(path) or looks_like_path(value):
        raise ConfigError(not_a_directory(value))
    return value


def not_a_directory(value: str) -> str:
    """The error's start for a model that is no directory, naming the absolute path looked at:
    a relative value is resolved against the directory `serve` was started in, which the user
    may not have in mind."""
    return f"{HF_MODEL_ID}={value} is not a directory (looked for {os.path.abspath(os.path.expanduser(value))})"


def default_served_name(model_id: str) -> str:
    """A hub id names itself; a directory is named by its base name, not by a path of this machine."""
    return os.path.basename(model_id.rstrip("/")) or model_id if os.path.isabs(model_id) else model_id


# Adapter names: SageMaker's inference component names, TGI's hub ids (``org/name``) and file-like
# names; never a leading or trailing ``/`` (it would not survive ``DELETE /adapters/<name>``).
ADAPTER_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._\-/]{0,254}[A-Za-z0-9._\-])?")


def valid_adapter_name(name: str) -> bool:
    return bool(ADAPTER_NAME.fullmatch(name)) and "//" not in name


def parse_lora_adapters(value: str) -> tuple[tuple[str, str], ...]:
    """TGI's ``LORA_ADAPTERS``: comma-separated ``name=path`` or ``path`` (then named as written),
    each an existing directory, returned with absolute paths. A hub id cannot be fetched by this
    server: it is refused here, at start-up, rather than at the first request."""
    adapters: list[tuple[str, str]] = []
    for item in (part.strip() for part in value.split(",")):
        if not item:
            continue
        name, equals, path = item.partition("=")
        name, path = name.strip(), (path.strip() if equals else name.strip())
        if not valid_adapter_name(name):
            raise ConfigError(f"{LORA_ADAPTERS}: `{name}` is not a valid adapter name (letters, digits, `.`, "
                              "`_`, `-`, `/` inside); name it with name=path")
        if not os.path.isdir(os.path.expanduser(path)):
            raise ConfigError(f"{LORA_ADAPTERS}: `{path}` is not a directory (looked for "
                              f"{os.path.abspath(os.path.expanduser(path))}); adapters are local PEFT directories, "
                              "this server downloads none from the hub")
        if name in (known for known, _ in adapters):
            raise ConfigError(f"{LORA_ADAPTERS}: adapter `{name}` is listed twice")
        adapters.append((name, os.path.abspath(os.path.expanduser(path))))
    return tuple(adapters)


def format_lora_adapters(adapters: tuple[tuple[str, str], ...]) -> str:
    """``LORA_ADAPTERS`` again, its paths resolved (``serve`` hands it to gunicorn, which changes directory)."""
    return ",".join(f"{name}={path}" for name, path in adapters)


@dataclass(frozen=True)
class TokenLimits:
    """The per-request token limits validation enforces, resolved once the model is known."""

    max_input_tokens: int
    max_total_tokens: int


@dataclass(frozen=True)
class Config:
    model_id: str
    served_name: str | None = None  # SERVED_MODEL_NAME; see served_model_name
    revision: str | None = None
    trust_remote_code: bool = False
    quantize: str | None = None
    num_gpus: int | None = None
    max_input_tokens: int | None = None
    max_total_tokens: int | None = None
    max_stop_sequences: int = 4
    max_top_n_tokens: int = 5
    max_best_of: int = 2
    max_concurrent_requests: int = 128
    max_batch_prefill_tokens: int | None = None
    max_batch_total_tokens: int | None = None
    max_batch_size: int | None = None
    default_max_new_tokens: int = 20
    port: int = 8080
    model_server_timeout: int = 3600
    workers: int = 1
    payload_limit: int = SAGEMAKER_PAYLOAD_LIMIT
    api_key: str | None = field(default=None, repr=False)
    dtype: str = "auto"
    device: str = "auto"
    torch_threads: int | None = None
    pack_weights: bool = True  # CPU: linear weights pre-packed for oneDNN (model/packed_linear)
    fused_prefill: bool = True  # a prefill chunk shares the decode step's forward pass (engines/native/fused_pass)
    warmup: bool = True  # the native engine's first passes run before the server is ready (engines/native/warmup)
    response_cache_size: int = 256
    compute_type: str | None = None  # None: by device, once it is known (model_loading)
    sse_keepalive_seconds: float = 15.0
    engine: str = "auto"
    vllm_enforce_eager: bool | None = None  # None: eager on CPU (no compile), CUDA graphs on GPU
    disable_grammar_support: bool = False
    grammar_compile_timeout: int = 5
    grammar_max_bytes: int = 256 * 1024
    lora_adapters: tuple[tuple[str, str], ...] = ()  # (name, absolute path), registered at start-up
    max_lora_adapters: int | None = None  # None: the engine's default (engines/registry)
    max_lora_rank: int = DEFAULT_MAX_LORA_RANK
    host: str = DEFAULT_HOST
    access_log: bool = False  # SageMaker pings every few seconds: access lines only on request
    log_level: str = "info"
    stateful_sessions: bool = False  # SAGEMAKER_ENABLE_STATEFUL_SESSIONS (serving/sessions)
    session_ttl_seconds: int = 1200
    sessions_path: str | None = None  # None: the server makes a fresh directory (container/gunicorn_conf.py)
    watermark_gamma: float = 0.5
    watermark_delta: float = 2.0

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> "Config":
        env = os.environ if env is None else env
        model_id = resolve_model_id(env.get(HF_MODEL_ID, "").strip())
        if env.get(MAX_INPUT_TOKENS, "").strip() and env.get(MAX_INPUT_LENGTH, "").strip():
            raise ConfigError(
                f"Both `max_input_tokens` ({env[MAX_INPUT_TOKENS]}) and `max_input_length` "
                f"({env[MAX_INPUT_LENGTH]}) are set. Please define only `max_input_tokens` as "
                "`max_input_length` is deprecated")
        quantize = env.get(HF_MODEL_QUANTIZE, "").strip().lower() or None
        if quantize in ("false", "none", "0"):
            quantize = None
        if quantize is not None and quantize not in QUANTIZATIONS:
            raise ConfigError(f"{HF_MODEL_QUANTIZE}={quantize} is not supported; "
                              f"supported: {', '.join(QUANTIZATIONS)}")
        config = cls(
            model_id=model_id,
            served_name=env.get(SERVED_MODEL_NAME, "").strip() or None,
            revision=env.get(HF_MODEL_REVISION, "").strip() or None,
            trust_remote_code=_bool(env, HF_MODEL_TRUST_REMOTE_CODE, False),
            quantize=quantize,
            num_gpus=_int(env, SM_NUM_GPUS, None, minimum=0),
            max_input_tokens=_int(env, MAX_INPUT_TOKENS, None, 1) or _int(env, MAX_INPUT_LENGTH, None, 1),
            max_total_tokens=_int(env, MAX_TOTAL_TOKENS, None, 2),
            max_stop_sequences=_int(env, MAX_STOP_SEQUENCES, 4),
            max_top_n_tokens=_int(env, MAX_TOP_N_TOKENS, 5),
            max_best_of=_int(env, MAX_BEST_OF, 2, minimum=1),
            max_concurrent_requests=_int(env, MAX_CONCURRENT_REQUESTS, 128, minimum=1),
            max_batch_prefill_tokens=_int(env, MAX_BATCH_PREFILL_TOKENS, None, 1),
            max_batch_total_tokens=_int(env, MAX_BATCH_TOTAL_TOKENS, None, 1),
            max_batch_size=_int(env, MAX_BATCH_SIZE, None, 1),
            default_max_new_tokens=_int(env, DEFAULT_MAX_NEW_TOKENS, 20, minimum=1),
            port=_int(env, SAGEMAKER_BIND_TO_PORT, 8080, minimum=1),
            model_server_timeout=_int(env, SAGEMAKER_MODEL_SERVER_TIMEOUT, 3600, minimum=1),
            workers=_int(env, SAGEMAKER_MODEL_SERVER_WORKERS, 1, minimum=1),
            payload_limit=_int(env, PAYLOAD_LIMIT, SAGEMAKER_PAYLOAD_LIMIT, minimum=1),
            api_key=env.get(API_KEY) or None,
            dtype=_choice(env, DTYPE, DTYPES, "auto"),
            device=_choice(env, SLUICE_DEVICE, DEVICES, "auto"),
            torch_threads=_int(env, SLUICE_TORCH_THREADS, None, minimum=1),
            pack_weights=_bool(env, SLUICE_PACK_WEIGHTS, True),
            fused_prefill=_bool(env, SLUICE_FUSED_PREFILL, True),
            warmup=_bool(env, SLUICE_WARMUP, True),
            response_cache_size=_int(env, RESPONSE_CACHE_SIZE, 256),
            compute_type=env.get(COMPUTE_TYPE, "").strip() or None,
            sse_keepalive_seconds=_int(env, SSE_KEEPALIVE_SECONDS, 15, minimum=1),
            engine=_choice(env, SLUICE_ENGINE, ENGINES, "auto"),
            vllm_enforce_eager=_optional_bool(env, SLUICE_VLLM_ENFORCE_EAGER),
            disable_grammar_support=_bool(env, DISABLE_GRAMMAR_SUPPORT, False),
            grammar_compile_timeout=_int(env, GRAMMAR_COMPILE_TIMEOUT, 5, minimum=1),
            grammar_max_bytes=_int(env, GRAMMAR_MAX_BYTES, 256 * 1024, minimum=1),
            lora_adapters=parse_lora_adapters(env.get(LORA_ADAPTERS, "")),
            max_lora_adapters=_int(env, MAX_LORA_ADAPTERS, None),
            max_lora_rank=_int(env, MAX_LORA_RANK, DEFAULT_MAX_LORA_RANK, minimum=1),
            watermark_gamma=_float(env, WATERMARK_GAMMA, 0.5, above=0.0, below=1.0),
            watermark_delta=_float(env, WATERMARK_DELTA, 2.0, above=0.0),
            **_session_settings(env),
            **_process_settings(env),
        )
        config.check()
        return config

    @property
    def served_model_name(self) -> str:
        """The model's name in OpenAI answers and ``/v1/models``: ``SERVED_MODEL_NAME``, else the
        hub id, else the model directory's base name."""
        return self.served_name or default_served_name(self.model_id)

    def check(self) -> None:
        """The cross-field rules TGI's launcher enforces, each failing with one line.

        Not TGI 1.x's `max_batch_prefill_tokens` >= `max_input_tokens`: both engines prefill a
        longer prompt in chunks of that many tokens (as TGI 3 does where it can chunk).
        """
        if self.port > 65535:
            raise ConfigError(f"{SAGEMAKER_BIND_TO_PORT} must be a TCP port. Given: {self.port}")
        if self.max_input_tokens is not None and self.max_total_tokens is not None \
                and self.max_input_tokens >= self.max_total_tokens:
            raise ConfigError(f"`max_input_tokens`({self.max_input_tokens}) must be < "
                              f"`max_total_tokens`({self.max_total_tokens})")
        if self.max_total_tokens is not None and self.max_batch_total_tokens is not None \
                and self.max_total_tokens > self.max_batch_total_tokens:
            raise ConfigError(f"`max_total_tokens` must be <= `max_batch_total_tokens`. Given: "
                              f"{self.max_total_tokens} and {self.max_batch_total_tokens}")
        if self.lora_adapters and self.max_lora_adapters == 0:
            raise ConfigError(f"{LORA_ADAPTERS} is set but {MAX_LORA_ADAPTERS}=0 turns adapters off")

    def token_limits(self, max_position_embeddings: int | None) -> TokenLimits:
        """Fill unset limits from the model's context length (TGI 2.x defaults), then re-check."""
        context = max_position_embeddings or 4096
        total = self.max_total_tokens or min(context, 4096)
        max_input = self.max_input_tokens or total - 1
        resolved = replace(self, max_input_tokens=max_input, max_total_tokens=total)
        resolved.check()
        if total > context:
            raise ConfigError(f"`max_total_tokens`({total}) must be <= the model's "
                              f"max_position_embeddings ({context})")
        return TokenLimits(max_input_tokens=max_input, max_total_tokens=total)
