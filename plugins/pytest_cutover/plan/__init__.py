"""The night as a budget: ``cutover plan``, and planned against actual in ``cutover status`` and the report.

``figures`` reads what earlier passes measured from ledger records, ``estimate`` turns counts and those
figures into a timed plan of the runbook's steps against the configured window (pure functions, figures
in, plan out), ``actual`` reads what each step really took from the night's records.  Only ``cli`` and
``progress`` touch a database.
"""
