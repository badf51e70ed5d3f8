"""OpenAI's chat completions and completions as TGI serves them: the shared reading and envelope
(``common``), chat (``chat``, ``chat_messages``, ``tools``), completions, the error bodies
(``errors``) and the routes (``routes``)."""
