"""Survey authoring beyond saving a draft.

- ``compat.py``: what publishing checks against the last published version (pure rules; the
  one database question, whether stored answers use a removed choice, is asked by the route
  through ``api/queries/surveys.py``).
- ``xlsform.py``: importing an XLSForm (.xlsx) as a draft, through pyxform.
- ``expressions.py``: the XPath subset of XLSForm ``relevant``/``constraint``/``calculate``
  turned into the definition's conditions and formulas.
"""
