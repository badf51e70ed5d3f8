"""Every generation route the app serves, protocol by protocol. Adding a protocol is its folder
(body parsing, dialect, error body, ``routes.ROUTES``) and its line here."""

from __future__ import annotations

from . import invocations
from .openai import routes as openai
from .route import Route
from .tgi import routes as tgi

ROUTES: tuple[Route, ...] = (*tgi.ROUTES, *openai.ROUTES, invocations.ROUTE)
