"""gunicorn's logger, with an access line's fields built only when the line is written.

gunicorn writes access lines whenever a logging configuration is given (Sluice always gives one,
to send its lines to stdout), and builds each request's fields (a dozen header lookups, a
formatted date, a dict wrapper) before the ``gunicorn.access`` logger's level is checked; with
access lines off (``SLUICE_ACCESS_LOG``, the default) that was a tenth of a request's CPU in a
burst of streams, for a line nobody reads.
"""

from __future__ import annotations

import logging

from gunicorn.glogging import Logger


class AccessLogger(Logger):
    def access(self, resp, req, environ, request_time):
        if self.access_log.isEnabledFor(logging.INFO):
            super().access(resp, req, environ, request_time)
