"""Paging SQLAlchemy queries with flask-smorest's ``@blp.paginate`` (X-Pagination header)."""

from typing import Any

from flask_smorest import Page
from sqlalchemy import func, select

from core import db


class SelectPage(Page):
    """A page of a ``select(...)``: counts the rows, fetches one slice."""

    @property
    def items(self) -> list[Any]:
        query = self.collection.limit(self.page_params.page_size).offset(
            self.page_params.first_item
        )
        return list(db.session.scalars(query))

    @property
    def item_count(self) -> int:
        counted = select(func.count()).select_from(self.collection.order_by(None).subquery())
        return int(db.session.scalar(counted) or 0)
