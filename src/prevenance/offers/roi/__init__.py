"""Offer ROI: the statistics of a treated arm against its hash-held control (``rules``, pure), the
measurement from the database (``service``), its REST routes (``api``) and CLI (``cli``)."""
