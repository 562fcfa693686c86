"""The soak: lifecycles under worker kills, backend faults, a broker outage and web load.

``harness`` holds the scenarios, each returning the counts that the invariants are read from;
``tests/test_soak.py`` runs short versions in ``make test`` and ``python -m tests.soak`` (``make soak``)
the full one, printing the table.
"""
