"""Silence two NNI 3.0 messages a user cannot act on, by message and only where this package runs NNI.

- On import, NNI wraps every ``torch.nn`` class and warns ``RuntimeWarning: <class> is found to be not
  a nn.Module ... your PyTorch version might not be supported`` for the ones that are not modules
  (torch 2.x has a few such helpers; nothing is wrong). :func:`importing_nni` hides that one warning
  while the package imports NNI; NNI emits it once per process, at its first import.
- Every ``NasExperiment`` run on the sequential engine logs ``'training_service' will be ignored for
  sequential execution engine.`` many times (NNI fills in a training service itself, then warns about
  it). :func:`quiet_nni_logs` drops exactly that record on the NNI logger that emits it; other records
  of that logger, and every other logger, pass.

Neither touches the global warning filters or the root logger.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

#: The import warning (``nni/nas/nn/pytorch/layers.py``), as a ``warnings`` message regex.
IMPORT_WARNING = ".*is found to be not a nn.Module"
#: The logger and message of the sequential engine's training-service warning.
CONFIG_LOGGER = "nni.nas.experiment.config.experiment"
TRAINING_SERVICE_MESSAGE = "`training_service` will be ignored for sequential execution engine"


@contextmanager
def importing_nni() -> Iterator[None]:
    """Import NNI inside this block: its import-time RuntimeWarning is hidden, nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=IMPORT_WARNING, category=RuntimeWarning)
        yield


class _DropMessage(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


def quiet_nni_logs() -> None:
    """Drop NNI's per-run training-service warning (idempotent)."""
    logger = logging.getLogger(CONFIG_LOGGER)
    if not any(isinstance(f, _DropMessage) and f.text == TRAINING_SERVICE_MESSAGE for f in logger.filters):
        logger.addFilter(_DropMessage(TRAINING_SERVICE_MESSAGE))
