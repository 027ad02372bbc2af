"""health's service layer, the only code that writes health's tables:

- ``lines``: joining pay-later, the terms, the limit and what is owed; eligibility at check-in;
- ``checkin``: the signed, short-lived, single-use check-in codes;
- ``face``: enrolment, verification (threshold, lock, replay), erasure;
- ``visits``: what hospitals post: visits, charges, corrections, bills, refunds;
- ``settlements``: paying bills by face, the automatic charge, and payments' outcomes;
- ``deadlines``: the sweeps (reminders, overdue marking, the automatic charge);
- ``dashboard``: the health commission's figures (no personal data).
"""
