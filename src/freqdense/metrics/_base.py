"""The metric accumulator protocol: summable state, so merging batches, files and ranks is addition."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import ConfigError, NonFiniteError

__all__ = ["Metric", "refuse_non_finite"]


class Metric:
    """Base class of the metric protocol used by the training engine.

    Subclasses list their state tensors in ``_state_names`` (each summable: counts or float64 sums) and
    implement ``update``, ``compute``, ``_config`` and ``_empty_state``.

    Protocol: ``update(...)`` accumulates a batch; ``compute() -> dict[str, float]`` (flat keys);
    ``reset()``; ``merge(other)`` adds ``other``'s state in place and returns ``self``; ``all_reduce()`` sums the
    state over torch.distributed ranks (no-op without an initialised process group); ``state_dict()`` /
    ``load_state_dict()`` for checkpointing mid-evaluation.
    """

    _state_names: tuple[str, ...] = ()

    def update(self, *args: Any, **kwargs: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _config(self) -> dict[str, Any]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _empty_state(self) -> dict[str, torch.Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def reset(self) -> None:
        """Zero the accumulated state (keeps the configuration)."""
        for name, value in self._empty_state().items():
            setattr(self, name, value)

    def to(self, device: torch.device | str) -> Metric:
        """Move the state to ``device`` (in place); ``update`` also follows its inputs' device."""
        for name in self._state_names:
            setattr(self, name, getattr(self, name).to(device))
        return self

    def merge(self, other: Metric) -> Metric:
        """Add ``other``'s accumulated state to this one (in place) and return ``self``.

        Raises:
            ConfigError: ``other`` is a different metric type or was built with different settings.
        """
        if type(other) is not type(self):
            raise ConfigError(f"cannot merge {type(other).__name__} into {type(self).__name__}; merge like with like")
        if other._config() != self._config():
            raise ConfigError(
                f"cannot merge {type(self).__name__} accumulators built with different settings: "
                f"{self._config()} vs {other._config()}; build both with the same arguments"
            )
        for name in self._state_names:
            mine = getattr(self, name)
            mine += getattr(other, name).to(mine.device)
        return self

    def all_reduce(self) -> Metric:
        """Sum the state over all torch.distributed ranks, in place; a no-op without a process group.

        Call it once per evaluation, after the last ``update`` and before ``compute`` (calling it twice would
        count every rank's state again).
        """
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return self
        needs_cuda = dist.get_backend() == "nccl"
        for name in self._state_names:
            state = getattr(self, name)
            buffer = state.to(torch.device("cuda", torch.cuda.current_device())) if needs_cuda else state
            dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
            if buffer is not state:
                state.copy_(buffer.to(state.device))
        return self

    def state_dict(self) -> dict[str, Any]:
        """State tensors (on CPU) plus the configuration they were accumulated under."""
        out: dict[str, Any] = {name: getattr(self, name).detach().cpu().clone() for name in self._state_names}
        out["config"] = dict(self._config())
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a ``state_dict``; its configuration must match this metric's.

        Raises:
            ConfigError: the saved configuration or state names differ.
        """
        if state.get("config") != self._config():
            raise ConfigError(
                f"{type(self).__name__} state was saved with settings {state.get('config')}, "
                f"this metric has {self._config()}; rebuild the metric with the saved settings"
            )
        missing = [n for n in self._state_names if n not in state]
        if missing:
            raise ConfigError(f"{type(self).__name__} state_dict lacks {missing}; it was not saved by this class")
        for name in self._state_names:
            current = getattr(self, name)
            value = state[name]
            if value.shape != current.shape:
                raise ConfigError(
                    f"{type(self).__name__} state {name!r} has shape {tuple(value.shape)}, "
                    f"expected {tuple(current.shape)}"
                )
            setattr(self, name, value.to(device=current.device, dtype=current.dtype).clone())


def refuse_non_finite(bad: torch.Tensor, name: str) -> None:
    """Raise NonFiniteError when ``bad`` (bool, batch first: NaN/inf at a pixel the metric counts) is set anywhere.

    The metrics never average NaN: one NaN prediction would turn the whole split's mean into NaN. The message
    gives the pixel count and the batch items; the evaluation loop adds the sample ids.
    """
    if torch.compiler.is_compiling() or not bool(bad.any()):
        return
    per_item = bad.reshape(bad.shape[0], -1).sum(dim=1)
    items = [int(i) for i in torch.nonzero(per_item).flatten()]
    error = NonFiniteError(
        f"{name} is NaN/inf at {int(per_item.sum())} evaluated pixels, in batch items {items[:10]}; a NaN "
        "prediction would make the whole split's mean NaN, so it is refused (check the inputs and the weights)"
    )
    error.batch_items = items
    raise error
