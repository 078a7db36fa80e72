"""Distributed transactions for the bookstore (lab 03): TCC participants and the coordinator's parts.

=====================  ===================================================================
``fence``              the TCC fence table (Seata's ``tcc_fence_log``): idempotent confirm and
                       cancel, empty rollback, no hanging try
``participant``        the HTTP face of a participant's TCC actions (``/txn/<action>/...``)
``faults``             faults on purpose at named points (``x-bookstore-fault``, lab mode)
``log``                the coordinator's persistent transaction log (used by ``services/tc``)
``client``             the coordinator's client: begin, register, commit, rollback, status,
                       and ``GlobalTransaction`` as an async context manager
=====================  ===================================================================

The roles are Seata's: the storefront is the TM (it begins and ends a purchase's global
transaction), stock and balance are RMs (TCC participants), ``tc`` is the TC.
"""
