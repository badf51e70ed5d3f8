"""The LoRA adapters this server knows, by name: registering, unregistering, and resolving which
one a request runs with. The same for both engines; each engine checks the weights against its
model and decides what stays loaded.

SageMaker's contract (adapter inference components): ``POST /adapters`` registers ``name`` from
the local directory ``src`` (SageMaker downloads the component's artifact first), ``DELETE
/adapters/<name>`` unregisters it, and ``X-Amzn-SageMaker-Adapter-Identifier`` selects it per
request. TGI's ``parameters.adapter_id`` and OpenAI's ``model`` select one too.

Rules, each chosen so that a request never silently runs on weights it did not ask for:

- An unknown adapter named by the header or by ``adapter_id`` is a 404, never the base model
  (TGI#2505 served the base for a mistyped ``adapter_id``).
- OpenAI's ``model``: a registered adapter's name selects it; the served model's name (and
  ``"tgi"``, read by the dialect) is the base. Any other name is TGI's echo (the base model) while
  no adapter is registered, since OpenAI clients must send some name; once adapters are
  registered it is a 404, as vLLM answers an unknown model, so a typo cannot reach the base.
  With the header present, a ``model`` that names no adapter is only a label.
- Two selectors naming different adapters: a 422, not a guess.
- Registering or unregistering at run time with several gunicorn workers: 409. Each worker is
  its own process with its own engine; a registration would reach one of them, and requests
  landing on the others would 404. ``LORA_ADAPTERS`` registers in every worker.
- A name already registered: 409 (unregister first). Replacing in place would make requests in
  flight, and answers cached for the old weights, ambiguous; every registration gets its own
  ``uid``, which keys both caches, so a name registered again never replays the old answers.
"""

from __future__ import annotations

import itertools
import os
import threading
from dataclasses import dataclass, field

from ..config import valid_adapter_name
from ..engines.base import GenerationEngine
from ..errors import (
    AdapterMisfitError,
    AdapterNotFoundError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    ValidationError,
)
from ..request import AdapterRef, AdapterSelection, AdapterSpec, SageMakerHeaders

HEADER_FIELD = "the X-Amzn-SageMaker-Adapter-Identifier header"


@dataclass(frozen=True)
class AdapterRecord:
    """A registered adapter: where it came from, how it was registered, what its files say."""

    ref: AdapterRef
    src: str
    alias: str | None = None
    pinned: bool = False
    facts: dict = field(default_factory=dict)  # rank, target modules... (the engine's check)

    @property
    def label(self) -> str:
        """How answers name it: SageMaker's alias when it sent one (the standards' messages do)."""
        return self.alias or self.ref.name


class AdapterRegistry:
    def __init__(self, engine: GenerationEngine, base_names: tuple[str, ...] = (), workers: int = 1):
        """``base_names``: the names OpenAI's ``model`` may give the base model (the served name);
        ``workers``: gunicorn's worker processes, each with its own registry."""
        self.engine = engine
        self.workers = workers
        self.base_names = frozenset(name for name in base_names if name)
        self._records: dict[str, AdapterRecord] = {}
        self._uids = itertools.count(1)  # vLLM's LoRA ids start at 1
        self._registering = threading.Lock()  # registrations are rare: one at a time

    # --- registration -----------------------------------------------------------------------------

    def register(self, name: str, src: str, alias: str | None = None, preload: bool = True,
                 pin: bool = False, at_start: bool = False) -> AdapterRecord:
        """Check and register an adapter: 400 malformed, 404 no such ``src``, 409 taken, 424 unfit.
        ``at_start``: ``LORA_ADAPTERS``, which every worker registers for itself."""
        if not at_start:
            self._check_one_worker()
        if not valid_adapter_name(name):
            raise BadRequestError(f"`name` {name!r} is not a valid adapter name: 1-256 letters, digits, "
                                  "`.`, `_`, `-` or inner `/`")
        path = local_directory(name, src)
        with self._registering:
            if name in self._records:
                raise ConflictError(f"The adapter {name} is already registered; unregister it "
                                    f"(DELETE /adapters/{name}) before registering it again")
            if name in self.base_names:
                raise ConflictError(f"`{name}` is the base model's name; choose another adapter name")
            ref = AdapterRef(name, next(self._uids))
            facts = self.engine.add_adapter(AdapterSpec(ref, path, pinned=pin, preload=preload))
            record = AdapterRecord(ref, path, alias, pin, facts)
            self._records[name] = record
        return record

    def unregister(self, name: str) -> AdapterRecord:
        """Forget an adapter (404 if unknown); requests running with it finish on its weights."""
        self._check_one_worker()
        with self._registering:
            record = self._records.pop(name, None)
            if record is None:
                raise NotFoundError(f"The adapter {name} was not found")
            self.engine.remove_adapter(record.ref)
        return record

    def _check_one_worker(self) -> None:
        if self.workers > 1:
            raise ConflictError(f"Adapters are registered at run time only with one worker "
                                f"(SAGEMAKER_MODEL_SERVER_WORKERS={self.workers}: each is its own process and would "
                                "not hear of it); list them in LORA_ADAPTERS instead")

    def records(self) -> list[AdapterRecord]:
        return sorted(self._records.values(), key=lambda record: record.ref.uid)

    def describe(self, record: AdapterRecord) -> dict:
        """One adapter as ``GET /adapters`` lists it."""
        return dict(record.facts, name=record.ref.name, alias=record.alias, src=record.src, pinned=record.pinned,
                    loaded=self.engine.adapter_loaded(record.ref))

    # --- selection ----------------------------------------------------------------------------------

    def resolve(self, headers: SageMakerHeaders, selection: AdapterSelection | None) -> AdapterRef | None:
        """The adapter a request runs with (None: the base model), from SageMaker's header and the
        body's own choice; see the module's rules."""
        chosen = self._named(headers.adapter, HEADER_FIELD) if headers.adapter else None
        if selection is None:
            return chosen
        if selection.strict or selection.name in self._records:
            named = self._named(selection.name, f"`{selection.field}`")
        elif selection.name in self.base_names or chosen is not None or not self._records:
            return chosen
        else:
            raise AdapterNotFoundError(selection.name, f"`{selection.field}`")
        if chosen is not None and chosen != named:
            raise ValidationError(f"{HEADER_FIELD} selects adapter `{chosen.name}` but `{selection.field}` "
                                  f"selects `{named.name}`; name one adapter")
        return named

    def _named(self, name: str, field_name: str) -> AdapterRef:
        record = self._records.get(name)
        if record is None:
            raise AdapterNotFoundError(name, field_name)
        return record.ref


def local_directory(name: str, src: str) -> str:
    """``src`` as an absolute local directory: 404 when nothing is there, 400 for an S3 URI (this
    server downloads nothing: SageMaker downloads an adapter component's artifact itself and
    registers the local copy), 424 for a file where a directory belongs."""
    if src.startswith("s3://"):
        raise BadRequestError(f"`src` {src} is an S3 URI; this server loads adapters from local directories only "
                              "(SageMaker downloads an adapter inference component's artifact and passes its path)")
    path = os.path.abspath(os.path.expanduser(src))
    if not os.path.exists(path):
        raise NotFoundError(f"The adapter {name} was not found: src {path} does not exist")
    if not os.path.isdir(path):
        raise AdapterMisfitError(name, f"src {path} is a file; a PEFT LoRA directory is expected")
    return path
