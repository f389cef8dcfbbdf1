"""Statistics: the indicators counted per ward and province, live, against plan targets.

Where things are:

- ``catalog``: the indicator catalog (data in the ``indicator`` table), the SQL it compiles
  to (the rebuild) and its Python twin (the writers' ``measure``). Add an indicator in
  ``migrations/data/indicators.json``.
- ``cells``: a counter's cell (numerator, denominator and their key sums).
- ``counters``: keeping the per-ward and per-province counters (writers append a batch's
  ``Tally`` to the ``stat_log``; the fold and the rebuild) and reading them with the
  unfolded log; targets.
- ``folder``: the background task that folds the log into the counters (one per database).
- ``disclosure``: what a published figure may show (the cell key method).
- ``sums``: a province's and the nation's figures, their wards' perturbed cells added up,
  kept by the fold (``stat_parent_now`` / ``stat_parent_month``) and read with the log.
- ``periods``, ``places``: what a request asks for (a period, an area) and who may read it.
- ``cards``: the card, the children table and the series, built from the counters.
- ``cardcache``: rendered cards kept per process until their counters change.
- ``exports``: the streamed CSV and XLSX exports.
- ``report``: the officials' Excel report (XlsxWriter: cover, summary, native charts,
  a sheet per indicator of the areas below), laid out from the card functions.
- ``chart``: an accessible SVG of an indicator's monthly series against its target.
- ``routes``: the HTTP endpoints (``/stats/...``, ``/targets``, ``/public``).
"""
