"""The serving room: the response driver and the generation service (admission, validation,
cache, metrics, cancellation) over any engine that satisfies ``engine_api``."""
