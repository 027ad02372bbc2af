"""Parking's rules, one file per concern; the only code that writes parking's tables."""

from parking.service import availability, ingest, ngsi, operators, reservations, stats

__all__ = ["availability", "ingest", "ngsi", "operators", "reservations", "stats"]
