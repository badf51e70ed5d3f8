"""The native engine's side of LoRA adapters: check one against the model, place its weights,
keep the bank of loaded ones, and hand each admitted row its adapter.

Registration runs in the request thread (reading and checking the directory costs no engine
step); the bank decides what stays loaded; the engine thread only reserves slots at admission
and takes the weights before a prefill (``engines.native.lora_bank``).
"""

from __future__ import annotations

import logging

from ...errors import AdapterMisfitError, AdapterNotFoundError, GenerationError
from ...model.lora_files import LoraWeights, check_fits, read_lora_dir
from ...request import AdapterRef, AdapterSpec
from .lora import LoadedLora, LoraLayers
from .lora_bank import AdapterBank, AdapterGone

log = logging.getLogger("sluice.adapters")


class NativeAdapters:
    def __init__(self, layers: LoraLayers, shapes: dict[str, tuple[int, int]], capacity: int, max_rank: int):
        self.layers, self.shapes, self.max_rank = layers, shapes, max_rank
        self.bank = AdapterBank(capacity, self._load)

    def add(self, spec: AdapterSpec) -> dict:
        """Check ``spec``'s directory against the model (a 424 if it does not fit) and register
        it, loaded now when it is pinned or asked to preload and a slot allows."""
        weights = self._read(spec)
        placed = self.layers.place(spec.ref, weights) if spec.preload or spec.pinned else None
        kept = self.bank.register(spec, placed)
        log.info("adapter %s registered from %s (%s)", spec.ref.name, spec.path, "loaded" if kept else "not loaded")
        return dict(weights.facts(), loaded=kept)

    def remove(self, ref: AdapterRef) -> None:
        self.bank.unregister(ref.uid)

    def is_loaded(self, ref: AdapterRef) -> bool:
        return self.bank.is_loaded(ref.uid)

    # --- the engine thread ----------------------------------------------------------------------

    def admission_gate(self, running: list):
        """Admission's last check (``Scheduler.admit``): a newcomer's adapter must have a slot;
        the adapters of the running rows and of the newcomers admitted before it are busy."""
        busy = {s.valid.adapter.uid for s in running if s.valid.adapter is not None}

        def gate(sequence) -> bool:
            ref = sequence.valid.adapter
            if ref is None:
                return True
            if not self.bank.reserve(ref.uid, busy):
                return False
            busy.add(ref.uid)
            return True
        return gate

    def take(self, newcomers: list) -> list:
        """The newcomers that can run, each given its adapter's weights (``sequence.lora``, read
        again from disk if they were evicted); one whose adapter was unregistered while it waited,
        or can no longer be read, fails alone."""
        ready = []
        for sequence in newcomers:
            ref = sequence.valid.adapter
            if ref is None:
                ready.append(sequence)
                continue
            try:
                sequence.lora = self.bank.take(ref.uid)
                ready.append(sequence)
            except AdapterGone:
                sequence.fail(AdapterNotFoundError(ref.name, "the request (unregistered while it waited)"))
            except Exception as error:
                self.bank.release_reservation(ref.uid)
                log.exception("adapter %s could not be loaded again", ref.name)
                sequence.fail(error if isinstance(error, AdapterMisfitError)
                              else GenerationError(f"adapter {ref.name} could not be loaded"))
        return ready

    # --- reading -----------------------------------------------------------------------------

    def _read(self, spec: AdapterSpec) -> LoraWeights:
        weights = read_lora_dir(spec.ref.name, spec.path, self.max_rank)
        check_fits(spec.ref.name, weights, self.shapes)
        return weights

    def _load(self, spec: AdapterSpec) -> LoadedLora:
        """An evicted adapter, read again from its directory (the bank calls this)."""
        return self.layers.place(spec.ref, self._read(spec))
