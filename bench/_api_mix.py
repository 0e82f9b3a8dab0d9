"""The request mix of `kameng bench api`, shared by the benchmark and its Locust child.

Kept apart from both: the benchmark must not import Locust (it monkey-patches the standard
library for gevent), and the child should not import the whole backend to learn the mix.
"""

from __future__ import annotations

#: Field name in the result -> (request name as Locust reports it, weight in the mix). A
#: sale's traffic: mostly the storefront (the catalog and a listing's page), then buyers polling
#: their order, listing their orders and fetching a delivered order's sealed release, the
#: supplier's dashboard, and the chain facts the web app asks for first.
MIX: dict[str, tuple[str, int]] = {
    "catalog": ("GET /catalog/listings", 30),
    "listing": ("GET /catalog/listings/{id}", 20),
    "order_status": ("GET /buyer/orders/{id}", 25),
    "my_orders": ("GET /buyer/orders", 8),
    "release": ("GET /buyer/orders/{id}/release", 10),
    "dashboard": ("GET /supplier/dashboard", 5),
    "chain": ("GET /chain", 2),
}
