"""The bookstore's one error tree.

Every refusal the bookstore can give is a :class:`BookstoreError` with an HTTP status and a stable
machine-readable ``code``; the web layer renders it as ``{"error": code, "message": ..., **detail}``
and the service clients turn that JSON back into the same class, so a refusal raised by the stock
service reaches the storefront's caller unchanged::

    BookstoreError
    ├── InvalidRequest (422)          invalid_request: a value outside the domain's rules
    ├── Unauthorized (401)            unauthorized: an admin call without the admin token
    ├── Forbidden (403)               forbidden: an admin call with a token that is not the admin token
    ├── NotFound (404)
    │   ├── UnknownBook               unknown_book
    │   ├── UnknownUser               unknown_user
    │   ├── UnknownOrder              unknown_order
    │   ├── UnknownPayment            unknown_payment
    │   ├── UnknownTransaction        unknown_transaction: no global transaction with that xid
    │   └── ModuleNotInstalled        module_not_installed
    ├── Conflict (409)
    │   ├── InsufficientStock         insufficient_stock
    │   ├── InsufficientBalance       insufficient_balance
    │   ├── UserExists                user_exists
    │   ├── OrderConflict             order_conflict: an order/payment id reused for other content
    │   ├── ModuleExists              module_exists
    │   ├── ModuleActive              module_active: the active module cannot be uninstalled
    │   ├── TryRefused                try_refused: a TCC try for a branch already tried or cancelled
    │   ├── BranchNotTried            branch_not_tried: a confirm before its try (the coordinator retries)
    │   ├── BranchConflict            branch_conflict: confirm after cancel, or cancel after confirm
    │   ├── TransactionNotActive      transaction_not_active: the global transaction was already decided
    │   ├── TransactionRolledBack     transaction_rolled_back: the purchase was undone, nothing charged
    │   └── PurchaseInProgress        purchase_in_progress: the same Idempotency-Key is still being served
    ├── ModuleRejected (422)          module_rejected: a module that does not honour the contract
    ├── PayloadTooLarge (413)         payload_too_large
    ├── InjectedFault (500)           injected_fault: a fault asked for with x-bookstore-fault (lab mode)
    └── DependencyError               a service this one calls did not answer properly
        ├── BadGateway (502)          bad_gateway: it answered with an error or nonsense
        ├── DependencyUnavailable (503) dependency_unavailable: it could not be reached
        └── DependencyTimeout (504)   dependency_timeout: it did not answer in time
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "BadGateway",
    "BookstoreError",
    "BranchConflict",
    "BranchNotTried",
    "Conflict",
    "DependencyError",
    "DependencyTimeout",
    "DependencyUnavailable",
    "Forbidden",
    "InjectedFault",
    "InsufficientBalance",
    "InsufficientStock",
    "InvalidRequest",
    "ModuleActive",
    "ModuleExists",
    "ModuleNotInstalled",
    "ModuleRejected",
    "NotFound",
    "OrderConflict",
    "PayloadTooLarge",
    "PurchaseInProgress",
    "TransactionNotActive",
    "TransactionRolledBack",
    "TryRefused",
    "Unauthorized",
    "UnknownBook",
    "UnknownOrder",
    "UnknownPayment",
    "UnknownTransaction",
    "UnknownUser",
    "UserExists",
    "error_from_payload",
]


class BookstoreError(Exception):
    """A refusal with an HTTP status, a stable code and a message written for the caller."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    #: Response headers the refusal needs (a 401 says which credentials it wants).
    headers: ClassVar[dict[str, str]] = {}

    def __init__(self, message: str, **detail: Any) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    def to_payload(self) -> dict[str, Any]:
        """The JSON body the web layer sends for this error."""
        return {"error": self.code, "message": self.message, **self.detail}


class InvalidRequest(BookstoreError):
    status_code = 422
    code = "invalid_request"


class Unauthorized(BookstoreError):
    """No credentials: the caller must say who it is (the response asks for a bearer token)."""

    status_code = 401
    code = "unauthorized"
    headers: ClassVar[dict[str, str]] = {"WWW-Authenticate": 'Bearer realm="bookstore-admin"'}


class Forbidden(BookstoreError):
    status_code = 403
    code = "forbidden"


class NotFound(BookstoreError):
    status_code = 404
    code = "not_found"


class UnknownBook(NotFound):
    code = "unknown_book"


class UnknownUser(NotFound):
    code = "unknown_user"


class UnknownOrder(NotFound):
    code = "unknown_order"


class UnknownPayment(NotFound):
    code = "unknown_payment"


class UnknownTransaction(NotFound):
    code = "unknown_transaction"


class ModuleNotInstalled(NotFound):
    code = "module_not_installed"


class Conflict(BookstoreError):
    status_code = 409
    code = "conflict"


class InsufficientStock(Conflict):
    code = "insufficient_stock"


class InsufficientBalance(Conflict):
    code = "insufficient_balance"


class UserExists(Conflict):
    code = "user_exists"


class OrderConflict(Conflict):
    code = "order_conflict"


class ModuleExists(Conflict):
    code = "module_exists"


class ModuleActive(Conflict):
    code = "module_active"


class TryRefused(Conflict):
    """A second try for one branch, or a try after its cancel (which would leave a hanging reservation)."""

    code = "try_refused"


class BranchNotTried(Conflict):
    """A confirm for a branch whose try never ran here; the coordinator retries, as Seata's TC does."""

    code = "branch_not_tried"


class BranchConflict(Conflict):
    """A confirm after a cancel, or a cancel after a confirm: the coordinator decided twice, never retried."""

    code = "branch_conflict"


class TransactionNotActive(Conflict):
    """A branch or a decision for a global transaction that was already committed or rolled back."""

    code = "transaction_not_active"


class TransactionRolledBack(Conflict):
    """The purchase's global transaction was rolled back (a refusal, a fault, its timeout): nothing was charged."""

    code = "transaction_rolled_back"


class PurchaseInProgress(Conflict):
    """A purchase with this Idempotency-Key is still being decided; retry a moment later with the same key."""

    code = "purchase_in_progress"


class ModuleRejected(BookstoreError):
    status_code = 422
    code = "module_rejected"


class PayloadTooLarge(BookstoreError):
    status_code = 413
    code = "payload_too_large"


class InjectedFault(BookstoreError):
    """A failure asked for on purpose (``x-bookstore-fault``, lab mode only), to teach and test recovery."""

    status_code = 500
    code = "injected_fault"


class DependencyError(BookstoreError):
    """A called service failed; ``dependency`` names it so the caller knows where to look."""

    status_code = 502
    code = "dependency_error"

    def __init__(self, dependency: str, message: str, **detail: Any) -> None:
        super().__init__(message, dependency=dependency, **detail)
        self.dependency = dependency


class BadGateway(DependencyError):
    code = "bad_gateway"


class DependencyUnavailable(DependencyError):
    status_code = 503
    code = "dependency_unavailable"


class DependencyTimeout(DependencyError):
    status_code = 504
    code = "dependency_timeout"


def _business_errors() -> dict[str, type[BookstoreError]]:
    """Refusals a service may pass on to its caller unchanged, by code."""
    passable: list[type[BookstoreError]] = [
        UnknownBook,
        UnknownUser,
        UnknownOrder,
        UnknownPayment,
        InsufficientStock,
        InsufficientBalance,
        UserExists,
        OrderConflict,
        UnknownTransaction,
        TryRefused,
        BranchNotTried,
        BranchConflict,
        TransactionNotActive,
        TransactionRolledBack,
        PurchaseInProgress,
    ]
    return {error.code: error for error in passable}


_PASSABLE_BY_CODE = _business_errors()


def error_from_payload(payload: object) -> BookstoreError | None:
    """Rebuild a business refusal from a dependency's JSON error body, or None if it is not one.

    Only domain refusals are rebuilt: a 422 or 5xx from a dependency means the caller or the
    dependency is broken, which the caller must report as a bad gateway instead.
    """
    if not isinstance(payload, dict):
        return None
    error_class = _PASSABLE_BY_CODE.get(str(payload.get("error")))
    message = payload.get("message")
    if error_class is None or not isinstance(message, str):
        return None
    detail = {key: value for key, value in payload.items() if key not in {"error", "message"}}
    return error_class(message, **detail)
