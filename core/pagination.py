"""Paging SQLAlchemy queries with flask-smorest's ``@blp.paginate`` (X-Pagination header)."""

from typing import Any

from flask_smorest import Page
from sqlalchemy import func, select

from core import db


class SelectPage(Page):
    """A page of a ``select(...)``, and the number of rows the select has.

    One query does both: the page's rows carry the total as a window count (``count(*) OVER
    ()``, computed before LIMIT and OFFSET, in the same snapshot as the rows). Only a page
    that comes back empty past the first needs a count of its own, and a select with DISTINCT
    (which a window count would not see) is counted apart. A page only reads: unless the
    request has begun its transaction already, it reads outside one (``db.begin_reading``).
    """

    def __init__(self, collection: Any, page_params: Any) -> None:
        self._items: list[Any] | None = None
        super().__init__(collection, page_params)  # reads item_count

    @property
    def items(self) -> list[Any]:
        if self._items is None:
            self._load()
        return self._items or []

    @property
    def item_count(self) -> int:
        if self._items is None:
            return self._load()
        return int(self.page_params.item_count)

    def _load(self) -> int:
        db.begin_reading()
        params = self.page_params
        page = self.collection.limit(params.page_size).offset(params.first_item)
        if self.collection._distinct:
            total = self._count()
            self._items = list(db.session.scalars(page)) if params.first_item < total else []
            return total
        rows = db.session.execute(page.add_columns(func.count().over())).all()
        self._items = [row[0] for row in rows]
        if rows:
            return int(rows[0][-1])
        return self._count() if params.first_item > 0 else 0

    def _count(self) -> int:
        counted = select(func.count()).select_from(self.collection.order_by(None).subquery())
        return int(db.session.scalar(counted) or 0)
