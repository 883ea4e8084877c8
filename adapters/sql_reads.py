"""The reads both relational stores make alike, in their :attr:`RelationalReads.DIALECT`:
the catalogue, order pages, the refund queue and an audit trail. Each store gives it two
ways to read: rows as dicts (:meth:`RelationalReads._read`) and as tuples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from iap_flow import codec
from iap_flow.adapters import sql
from iap_flow.domain.models import AuditEvent, Order, Product, RefundRequest
from iap_flow.ports import OrderQuery


class RelationalReads:
    """Mixed into both relational stores."""

    DIALECT: ClassVar[sql.Dialect]
    STATEMENTS: ClassVar[sql.Statements]

    def _read(self, text: str, params: Sequence[Any] | dict[str, Any] = ()) -> list[dict[str, Any]]:
        """Rows as dicts, on the thread's open transaction's connection or a free one."""
        raise NotImplementedError

    def _tuples(self, text: str, params: Sequence[Any]) -> Sequence[Sequence[Any]]:
        """Rows as tuples, like :meth:`_read`."""
        raise NotImplementedError

    def list_products(self, active_only: bool) -> list[Product]:
        where = " WHERE active = 1" if active_only else ""
        rows = self._read(f"SELECT * FROM products{where} ORDER BY sku")
        return [codec.product_from(r) for r in rows]

    def query_orders(self, query: OrderQuery) -> tuple[list[Order], str | None]:
        text, params = sql.order_page(query, self.DIALECT)
        return sql.page_of(self._tuples(text, params), query.limit)

    def refunds(
        self, statuses: Sequence[str], user_id: str | None, limit: int
    ) -> list[RefundRequest]:
        rows = self._read(*sql.refund_queue(self.DIALECT, statuses, user_id, limit))
        return [codec.refund_from(r) for r in rows]

    def history(self, aggregate_id: str) -> list[AuditEvent]:
        sql.check_text((aggregate_id,), "subject_id")
        rows = self._read(self.STATEMENTS.history, (aggregate_id,))
        return [codec.audit_from(r) for r in rows]
