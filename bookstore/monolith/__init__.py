"""The monolith: the whole bookstore in one process with one database and local transactions.

Run it with ``python -m bookstore.monolith``; :func:`create_app` builds the ASGI app.
"""

from bookstore.monolith.app import MonolithShop, create_app

__all__ = ["MonolithShop", "create_app"]
