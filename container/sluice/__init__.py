"""Sluice: a SageMaker-compatible server that streams tokens from a transformers model.

Rooms, in the direction data flows: ``http_io``/``app``/``*_routes`` (HTTP), ``schema`` and
``validation`` (requests), ``service`` (admission and waiting), ``engine`` (scheduling and
batching), ``model_runner``/``kv_batch``/``sampling`` (model execution), ``sequence``,
``detokenizer`` and ``stopping`` (per-request text and stop rules), ``responses`` and ``framing``
(what goes on the wire). ``config``, ``errors`` and ``model_loading`` are shared by all.
"""

__version__ = "0.1.0"
