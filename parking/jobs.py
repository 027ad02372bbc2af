"""Parking's sweeps: the sensor-driven reservation lifecycle."""

from parking.service import reservations


def reservations_sweep() -> int:
    """Expire unpaid holds, remind, mark arrivals, no-shows, departures and overstays."""
    return reservations.sweep()
