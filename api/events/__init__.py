"""Outbound events: other systems hear about new data without polling.

- ``outbox.py``: events written in the same transaction as what they report (an accepted
  submission, a deleted household, a review decision, a target change).
- ``delivery.py``: the worker (one per deployment, elected with a PostgreSQL advisory lock)
  that sends each webhook its events in order, signed, retrying with back-off and jitter.
- ``addresses.py``: where a webhook may send (public addresses, checked at every delivery).
- ``webhooks.py``: the SQL for webhooks and their delivery log.
- ``routes.py``: ``/webhooks`` (register, list, delivery log, redeliver, resume).
"""
