"""The grid machinery: the paper's tables (``reproduce``), the book's experiment and the searches, over cells that
each make one run record.

Its modules stand on floors, and each imports only from floors below it (and from the rest of the library, never
from :mod:`threephase.cli`, which stands on top); ``tests/test_layout.py`` checks it:

0. :mod:`~threephase.grid.cells` (one cell: run, skip or refuse it; the ``--jobs`` worker pool and its worker,
   ``python -m threephase.grid.cells``), :mod:`~threephase.grid.settings` (the experiment's settings and
   questions)
1. :mod:`~threephase.grid.jobs` (cells as submitit jobs: ``--executor local|slurm``),
   :mod:`~threephase.grid.tables` (the paper's numbers and the tables of run records),
   :mod:`~threephase.grid.forest` (the experiment's figures)
2. :mod:`~threephase.grid.reproduce` (the paper's grids and the ``reproduce`` command),
   :mod:`~threephase.grid.search` (tuning on validation and the ``search`` command),
   :mod:`~threephase.grid.report` (the experiment's tables, figures and findings),
   :mod:`~threephase.grid.compare_report` (the verdicts of ``compare``: its table, sentences and forest plot)
3. :mod:`~threephase.grid.experiment` (the experiment's plan and the ``experiment`` command),
   :mod:`~threephase.grid.compare` (every method against FT on your data and the ``compare`` command)
"""
