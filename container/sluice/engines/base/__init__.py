"""What every engine shares and serving relies on: the interface, the sequence a request becomes,
the loop thread that owns the engine, and what an engine's ``build`` hands the wiring. No torch,
no engine library: serving imports this, never an engine folder."""

from .interface import EngineBuild, EngineStats, GenerationEngine
from .loop_thread import LoopThread
from .sequence import Choice, QueueSink, Sequence, SequenceMaker, StepSink, draw_seed

__all__ = ["Choice", "EngineBuild", "EngineStats", "GenerationEngine", "LoopThread", "QueueSink", "Sequence",
           "SequenceMaker", "StepSink", "draw_seed"]
