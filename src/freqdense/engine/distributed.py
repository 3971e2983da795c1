"""Distributed data parallel through torchrun: gloo on CPU, nccl on GPU. Single-process needs no process group."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

log = logging.getLogger(__name__)

__all__ = ["DistInfo", "init_distributed", "wrap_model", "unwrap", "shutdown"]


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group torchrun describes in the environment (no-op without ``WORLD_SIZE`` > 1)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend=backend)
        log.info("process group: backend=%s rank=%d/%d", backend, rank, world_size)
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank)


def wrap_model(model: nn.Module, info: DistInfo, device: torch.device) -> nn.Module:
    """DistributedDataParallel (+ SyncBatchNorm on GPU) when world size > 1, else the model unchanged.

    PyTorch's SyncBatchNorm runs on CUDA only, so CPU (gloo) runs keep per-process batch statistics; running
    statistics are still broadcast from rank 0 by DDP, so every rank evaluates the same model.
    """
    if not info.enabled:
        return model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    elif any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        log.info("CPU DDP: SyncBatchNorm needs CUDA in PyTorch; batch norm uses per-process batch statistics")
    device_ids = [info.local_rank] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=False)


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
