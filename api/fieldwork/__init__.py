"""Field work: where a ward's team goes next.

- ``visit_plan``: the ward's households ordered by how much a visit would move the ward
  towards its lagging targets, each with the reason it is there (SQL beside the function).
- ``settings``: the ward settings the plan uses (when a survey is stale).
- ``routes``: ``GET /areas/{wardCode}/visit-plan``, ``GET``/``PUT /areas/{wardCode}/settings``.

The team member's ``GET /sync/pull`` carries the first page of their plan (``pull_plan``).
"""
