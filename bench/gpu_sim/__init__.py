"""The simulated GPU of the ``gpu-sim`` benchmark scenario: real serving code, a fixed step time.

On a GPU, one decode step of a big batch takes 10-20 ms and everything the host does per token
happens beside it (or, in a serving stack that waits for delivery, between two steps while the
GPU idles). This 2-core machine has no GPU, so the benchmark stands one in: inside the server
processes, and only when the benchmark sets ``SLUICE_GPU_SIM_STEP_MS``, the model's work of one
step (forward pass, logits and sampling: what a GPU does) is replaced by a fixed wall-clock wait of
S ms. A ``sleep`` releases the GIL, as waiting on a CUDA kernel does, so every host-side part runs
for real: vLLM's scheduler, input preparation and output processing, Sluice's detokenizer,
stopping, encoding and socket writes, HTTP. The token a step picks is a fixed function of the
token before it (``successors``): never EOS or a special token, so every stream makes exactly its
``max_new_tokens``, and every contender produces the same token ids for the same prompt.

Nothing here is imported by the server unless the benchmark starts it with ``PYTHONPATH`` set to
``bench/gpu_sim/hook`` and ``SLUICE_GPU_SIM_STEP_MS`` in its environment (``hook/sitecustomize``).
"""
