"""Benchmarks of airflow-provider-ft, each against a baseline measured in the same run.

``python -m benchmarks`` (or ``make bench``) runs them all and writes ``BENCHMARKS.md``; ``--smoke`` runs each in
a tiny quick mode. See ``benchmarks/README.md``.
"""
