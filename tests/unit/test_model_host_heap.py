"""What a worker loaded stays out of Python's full collections (model/host.freeze_loaded_heap).

A full collection walks every object of the oldest generation under the GIL; with vLLM loaded that
is about 700,000 objects and a 420 ms stall in the middle of serving. Once the model is ready,
the objects loading made must be frozen (skipped by every collection), and the objects requests
make afterwards must still be collected."""

from __future__ import annotations

import gc
import threading
import weakref

import pytest

from sluice.config import Config
from sluice.model.host import ModelHost


class Service:
    def __init__(self, loaded):
        self.loaded = loaded  # kept as long as the worker serves, as an engine's objects are


class Serving:
    def __init__(self, loaded):
        self.service = Service(loaded)
        self.compute_type = "CPU"


@pytest.fixture
def unfrozen_after():
    yield
    gc.unfreeze()


def test_objects_loading_made_are_skipped_by_full_collections_and_later_garbage_is_collected(unfrozen_after):
    ready = threading.Event()
    config = Config.from_environ({"HF_MODEL_ID": "org/model"})
    host = ModelHost(config, lambda config: Serving([[i] for i in range(50_000)]),
                     on_failure=lambda error: None, on_ready=ready.set).start()
    assert ready.wait(30) and host.service is not None
    assert gc.get_freeze_count() >= 50_000
    assert len(gc.get_objects(generation=2)) < 50_000  # the loaded lists are no longer walked

    class Node:
        pass

    refs = []
    for _ in range(1000):  # request-time cyclic garbage: still collected
        node = Node()
        node.me = node
        refs.append(weakref.ref(node))
    del node
    gc.collect()
    assert all(ref() is None for ref in refs)
