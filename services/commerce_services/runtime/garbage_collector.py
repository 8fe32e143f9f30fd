"""The garbage collector of a serving process, set for a long-lived server.

Python's defaults (a young-generation pass every 700 net allocations) suit short scripts: under
load a service allocates that many container objects in a fraction of a request, and every
full pass walks every object the process holds, most of them the modules, classes and wiring
imported at start, which live as long as the process. So: what exists at start is frozen
(moved to a generation no pass walks), and the young generation is collected about fourteen
times less often; objects freed by reference counting in between (most of a request's) are
then never walked at all. Measured in docs/benchmarks/order-throughput-profile.md.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # Python's default is 700
OLDER_THRESHOLDS = (10, 10)  # Python's defaults: a middle pass per 10 young, a full per 10


def settle_for_serving() -> None:
    gc.collect()  # what start-up left as garbage is freed, not frozen
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
