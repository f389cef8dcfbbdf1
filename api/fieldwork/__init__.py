"""Field work: where a ward's team goes next.

- ``visit_plan``: the ward's households ordered by how much a visit would move the ward
  towards its lagging targets, each with the reason it is there (SQL beside the function).
- ``settings``: the ward settings the plan uses (when a survey is stale).
- ``assignments``: who visits whom (a team member's hamlets or households) and a team's
  progress.
- ``review``: ward officials' decisions on submissions and the fix requests they send back.
- ``routes``: ``GET /areas/{wardCode}/visit-plan``, ``GET``/``PUT /areas/{wardCode}/settings``,
  ``GET``/``PUT /teams/{id}/assignments``, ``GET /teams/{id}/progress``,
  ``PUT /submissions/{id}/review``.

The team member's ``GET /sync/pull`` carries the first page of their plan (``pull_plan``),
their assignments (their assigned households first on a first pull) and their fix requests.
"""
