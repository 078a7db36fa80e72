"""The Cloud Native Bookstore: the application the workshop's attendees evolve.

``monolith`` serves everything from one process and one database; ``services`` splits it into a
storefront, a stock and a balance service; ``modules`` holds the ranking strategies a running
storefront loads at run time; ``txn`` is left for the TCC toolkit of lab 03. This package imports
nothing heavy, so ``import bookstore`` costs nothing to a notebook.
"""
