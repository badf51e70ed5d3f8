"""vLLM's engine behind Sluice's protocol (``SLUICE_ENGINE=vllm``). vLLM itself is imported only
by ``build`` and inside ``engine``'s functions, so nothing pays for it unless it is selected."""
