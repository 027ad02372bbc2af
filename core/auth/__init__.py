"""Accounts, roles, organisations and their API keys; who the caller is and what they may call.

Identity lives in ``core`` rather than ``civic`` because every module's routes, and core's own
(audit, inbox), must authenticate the caller, and ``core`` may import no feature module.
"""
