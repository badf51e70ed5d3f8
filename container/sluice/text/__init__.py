"""Text of one sequence: its state and events, the incremental detokenizer, the stopping rules."""
