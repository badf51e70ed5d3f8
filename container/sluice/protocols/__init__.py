"""The protocols a client may speak, one folder per family: ``tgi`` (generate, generate_stream,
the compat body of ``/``) and ``openai`` (chat completions, completions). Each parses its bodies
into the typed request, encodes events, final bodies and errors, and lists its routes; serving's
driver does the rest. ``invocations`` is SageMaker's route, which picks one of them by the body;
``registry`` gathers every route the app serves. ``fields`` and ``grammar_fields`` are the
readers every protocol shares."""
