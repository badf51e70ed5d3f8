"""The TokenIterator of the AWS JumpStart streaming blog (seed 003), verbatim.

Kept as the reference users already run: the container must satisfy it unchanged, and
deploy.TokenIterator must do better where it breaks.
"""

import io
import json


class BlogTokenIterator:
    """Verbatim from the AWS JumpStart streaming blog (seed 003), kept as the reference to beat."""

    def __init__(self, stream):
        self.byte_iterator = iter(stream)
        self.buffer = io.BytesIO()
        self.read_pos = 0

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            self.buffer.seek(self.read_pos)
            line = self.buffer.readline()
            if line and line[-1] == ord("\n"):
                self.read_pos += len(line) + 1
                full_line = line[:-1].decode("utf-8")
                line_data = json.loads(full_line.lstrip("data:").rstrip("/n"))  # noqa: B005 (the blog's bug, kept)
                return line_data["token"]["text"]
            chunk = next(self.byte_iterator)
            self.buffer.seek(0, io.SEEK_END)
            self.buffer.write(chunk["PayloadPart"]["Bytes"])
