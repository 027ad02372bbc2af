"""civic's service layer, the only code that writes civic's tables: ``credit`` (the city credit
score, for other modules too), ``catalog`` (departments and services), ``applications``
(submission, fees, the officials' workflow), ``documents`` (uploaded files), ``certificates``
(signed e-certificates) and ``open311`` (GeoReport v2)."""
