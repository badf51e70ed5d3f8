"""Sluice: a SageMaker-compatible server that streams tokens from a transformers model.

Rooms, in the direction data flows: ``http`` (Flask app, routes, transport), ``protocols`` (one
folder per protocol: its bodies, answers, errors and routes), ``serving`` (the response driver,
admission, validation, cache, metrics), ``engines`` (one folder per engine behind
``engines.base``), with ``request`` (the typed request), ``text`` (a sequence's text and stop
rules), ``wire`` (framing) and ``model`` (loading, model facts) shared below them. ``config`` and
``errors`` are shared by all; ``bootstrap`` wires a chosen engine to serving. docs/architecture.md
has the map.
"""

__version__ = "0.1.0"
