"""Compiled inference: every restart's ``log pi_k + log p_k(x)`` for any rows, batch by batch.

Training (:mod:`nfmix.train`) and prediction (:mod:`nfmix.model`) share these compiled functions. Each is traced
once per :class:`~nfmix.flows.MixtureSpec` and shared by every model of that configuration.
"""

from __future__ import annotations

import threading

import numpy as np

from nfmix._tf import tf
from nfmix.flows import FlowMixture, MixtureSpec


class SharedCompiled:
    """Compiled functions shared by every model of one configuration, kept for the life of the process.

    The functions take the parameters as arguments, so one trace (and one XLA compile) serves every model with
    the same shapes, and the cache never keeps a model or its weights alive. Nothing is dropped from the cache:
    TensorFlow never frees XLA-compiled code (its memory stays mapped after the function is gone), so a dropped
    configuration's next fit would compile it again and map more, until a process that fits many models runs
    out of memory maps and crashes inside LLVM. A lock makes the cache safe to use from several threads;
    tf.function itself is.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._cache = {}
        cls._lock = threading.Lock()

    @classmethod
    def get(cls, key: tuple):
        with cls._lock:
            if key not in cls._cache:
                cls._cache[key] = cls(*key)
            return cls._cache[key]


class CompiledDensity(SharedCompiled):
    """``log pi_k + log p_k(x)`` (``[n, R, K]``) as one compiled function per :class:`MixtureSpec`, any ``R``."""

    def __init__(self, spec: MixtureSpec):
        self.spec = spec
        # A fixed signature (any number of rows and restarts) traces once, whatever the batch sizes: a fit's
        # scoring of all its restarts and its labelling with the kept one share the trace.
        signature = [
            [tf.TensorSpec((None, *shape[1:]), tf.float32) for shape in spec.shapes()],
            tf.TensorSpec([None, spec.n_features], tf.float32),
        ]
        self.function = tf.function(self._weighted_log_prob, input_signature=signature, autograph=False)

    def _weighted_log_prob(self, values, x):
        return FlowMixture(self.spec, values).weighted_log_prob(x)

    @classmethod
    def evaluate(cls, spec: MixtureSpec, values, X, batch_size: int = 4096) -> np.ndarray:
        density = cls.get((spec.with_restarts(1),))  # the number of restarts is not part of the trace
        values = [tf.convert_to_tensor(v, tf.float32) for v in values]
        return batched(lambda x: density.function(values, x), X, scoring_rows(spec, batch_size))


def scoring_rows(spec: MixtureSpec, batch_size: int = 4096) -> int:
    """Rows per batch when scoring: each layer's activations ([flows, width, rows]) stay near 2^24 floats, as
    image models are wide; a multiple of :data:`ROW_BLOCK`."""
    width = max(*spec.hidden_units, 2 * spec.n_features)
    batch_size = int(max(256, min(batch_size, 2**24 // (spec.n_restarts * spec.n_components * width))))
    return batch_size - batch_size % ROW_BLOCK


ROW_BLOCK = 64  # batches are padded to a multiple of this many rows


def batched(compiled_fn, X, batch_size: int = 4096) -> np.ndarray:
    """Apply a compiled ``x [B, D] -> [B, ...]`` function to every row, batch by batch, and stack the results.

    A batch whose size is not a multiple of :data:`ROW_BLOCK` is padded (and the padding dropped): the CPU
    matmul kernels round the last few columns of a block differently, and a row's result must not depend on
    where in the batch it sits (scikit-learn checks that order and subsets give the same scores).
    """
    X = np.asarray(X, np.float32)
    parts = []
    for start in range(0, len(X), batch_size):
        rows = X[start : start + batch_size]
        padded = np.pad(rows, [(0, -len(rows) % ROW_BLOCK), (0, 0)])
        parts.append(compiled_fn(tf.constant(padded)).numpy()[: len(rows)])
    return np.concatenate(parts)
