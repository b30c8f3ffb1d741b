"""Dependencies shared by the routers: who is calling (authenticated and rate-limited), and how big
a page may be."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query

from api.ratelimit import rate_limited_client
from db.models import Client

#: The authenticated client, after it paid one rate-limit token (api/ratelimit.py).
ClientDep = Annotated[Client, Depends(rate_limited_client)]
#: ``?limit=`` of a list endpoint: 1 to 100 items a page.
PageSize = Annotated[int, Query(ge=1, le=100)]
