"""The bookstore as microservices: ``storefront`` (public API and page, no data of its own) calls
``stock`` (books, stock, orders) and ``balance`` (users, money) over HTTP by Service name.

Each is one module and one process: ``python -m bookstore.services.storefront`` (or ``.stock``,
``.balance``), configured by :class:`bookstore.settings.Settings`.
"""
