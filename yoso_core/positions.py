"""RoBERTa's position layout, which YOSO models and the softmax baseline share.

Position ids start at ``padding_idx + 1 = 2``, so a table for ``n`` tokens has ``n + 2`` rows,
rows 0 and 1 never read. YOSO's ``max_position_embeddings`` counts tokens (its table has
``max_position_embeddings + POSITION_OFFSET`` rows); RoBERTa's counts rows.
"""

from __future__ import annotations

POSITION_OFFSET = 2
