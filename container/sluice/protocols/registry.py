"""Every generation route the app serves, protocol by protocol. Adding a protocol is its folder
(body parsing, dialect, error body, ``routes.ROUTES``) and its line here.

``/invocations`` may hand its body to another of them: ``route=/v1/chat/completions`` in
``X-Amzn-SageMaker-Custom-Attributes`` (SageMaker forwards that header verbatim) sends it there,
as AWS's vLLM image does; a path that is no generation route is a 404.
"""

from __future__ import annotations

from ..errors import UnknownRouteError
from ..request import SageMakerHeaders
from . import invocations
from .openai import routes as openai
from .route import Route
from .tgi import routes as tgi

ROUTES: tuple[Route, ...] = (*tgi.ROUTES, *openai.ROUTES, invocations.ROUTE)
ROUTE_ATTRIBUTE = "route"
_BY_PATH = {route.path: route for route in ROUTES}


def invoked_route(sagemaker: SageMakerHeaders) -> Route:
    """The route an ``/invocations`` request goes to: the one its ``route=`` custom attribute
    names, else ``/invocations`` itself (which picks a protocol by the body's shape)."""
    paths = sagemaker.attributes(ROUTE_ATTRIBUTE)
    if not paths:
        return invocations.ROUTE
    if len(set(paths)) > 1:  # the last one winning would drop the others without a word
        raise UnknownRouteError(f"Custom attributes name more than one route: {', '.join(f'route={p}' for p in paths)}")
    path = paths[0]
    route = _BY_PATH.get(path)
    if route is None:
        raise UnknownRouteError(f"Custom attribute route={path} names no inference route; one of: "
                                f"{', '.join(sorted(_BY_PATH))}")
    return route
