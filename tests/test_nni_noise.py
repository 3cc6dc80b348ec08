"""NNI's per-run training_service warning is dropped by message, on NNI's logger only; the rest passes."""

from __future__ import annotations

import logging

from nni_decouple import nni_noise


def test_only_the_training_service_line_is_dropped():
    import nni_decouple.spaces  # noqa: F401  (importing the space installs the filter)

    logger = logging.getLogger(nni_noise.CONFIG_LOGGER)
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.WARNING)  # earlier tests may have raised NNI's level; this one reads warnings
    try:
        logger.warning("`training_service` will be ignored for sequential execution engine.")
        logger.warning("`trial_concurrency` must be 1 for sequential execution engine.")
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert seen == ["`trial_concurrency` must be 1 for sequential execution engine."]
    nni_noise.quiet_nni_logs()  # idempotent: one filter, however often it is installed
    assert sum(isinstance(f, nni_noise._DropMessage) for f in logger.filters) == 1
