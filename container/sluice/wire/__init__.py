"""The wire room: the bytes of streamed and JSON answers (SSE, NDJSON, compact JSON)."""
