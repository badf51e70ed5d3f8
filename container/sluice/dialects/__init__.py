"""The dialects: TGI generate/compat, OpenAI chat, OpenAI completions. Each parses its body into
the typed request and encodes events, errors and final bodies; serving's driver does the rest."""
