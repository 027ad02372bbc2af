"""Schema pieces every module shares."""

import marshmallow as ma


class StrictSchema(ma.Schema):
    """A request schema that rejects unknown fields (a typo must not be silently dropped)."""

    class Meta:
        unknown = ma.RAISE
