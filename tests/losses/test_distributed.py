"""Every loss on two gloo ranks equals the single-process loss on the concatenated batch.

Two CPU processes (torch.multiprocessing, gloo, 127.0.0.1) each hold an uneven shard (5 and 3
sites) with missing modalities (rank 1 has no third view at all). Checked per loss:

* the value on each rank equals the single-process value;
* the gradient of the local shard is ``world_size`` times the matching slice of the single-process
  gradient (gather's backward sums all ranks' copies; see jointssl.losses.distributed);
* through a real ``DistributedDataParallel`` model (which averages over ranks), the parameter
  gradient equals the single-process one.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from jointssl.losses import build_loss

WORLD = 2
SHARDS = [slice(0, 5), slice(5, 8)]
NAMES = ["infonce", "vicreg", "barlow_twins", "byol"]
VIEWS = ["naip", "s2", "s1"]


def data() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """inputs [8 6], byol targets [8 4], presence [8] per view; the same in every process."""
    g = torch.Generator().manual_seed(7)
    inputs = {v: torch.randn(8, 6, generator=g) for v in VIEWS}
    targets = {v: torch.randn(8, 4, generator=g) for v in VIEWS}
    present = {
        "naip": torch.tensor([1, 1, 0, 1, 1, 1, 1, 0]).bool(),
        "s2": torch.ones(8, dtype=torch.bool),
        "s1": torch.tensor([1, 1, 1, 0, 1, 0, 0, 0]).bool(),
    }
    return inputs, targets, present


def model() -> nn.Linear:
    torch.manual_seed(0)
    return nn.Linear(6, 4)


def run_loss(name: str, net: nn.Module, inputs, targets, present, rows: slice):
    """(loss, input leaves, parameter grads) on ``rows`` of the data; one forward for all views."""
    leaves = {v: inputs[v][rows].clone().requires_grad_() for v in VIEWS}
    stacked = net(torch.cat([leaves[v] for v in VIEWS]))  # [V*b 6] -> [V*b 4]
    z = dict(zip(VIEWS, stacked.split(rows.stop - rows.start)))
    mask = {v: present[v][rows] for v in VIEWS}
    loss_fn = build_loss(name)
    loss = loss_fn(z, {v: targets[v][rows] for v in VIEWS}, mask) if name == "byol" else loss_fn(z, mask)
    loss.backward()
    return loss.detach(), {v: leaves[v].grad for v in VIEWS}


def worker(rank: int, port: int, out: str) -> None:
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        inputs, targets, present = data()
        results = {}
        net = nn.parallel.DistributedDataParallel(model())  # built once: construction takes seconds
        for name in NAMES:
            net.zero_grad(set_to_none=True)
            loss, grads = run_loss(name, net, inputs, targets, present, SHARDS[rank])
            results[name] = {"loss": loss, "grads": grads, "weight": net.module.weight.grad.clone()}
        torch.save(results, Path(out) / f"rank{rank}.pt")
        dist.barrier()  # neither rank tears gloo down while the other still talks to it (else SIGABRT)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.parametrize("name", NAMES)
def test_two_ranks_equal_one_process(shards: list[dict], name: str) -> None:
    inputs, targets, present = data()
    net = model()
    loss, grads = run_loss(name, net, inputs, targets, present, slice(0, 8))
    for rank, result in enumerate(shards):
        got = result[name]
        torch.testing.assert_close(got["loss"], loss, rtol=1e-5, atol=1e-6)
        for v in VIEWS:
            torch.testing.assert_close(got["grads"][v] / WORLD, grads[v][SHARDS[rank]], rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(got["weight"], net.weight.grad, rtol=1e-4, atol=1e-6)


def test_helpers_are_no_ops_without_a_process_group() -> None:
    from jointssl.losses import distributed

    x = torch.randn(3, 2, requires_grad=True)
    assert not distributed.is_distributed()
    assert distributed.world_size() == 1 and distributed.rank() == 0
    assert distributed.gather(x) is x
    assert distributed.shard_sizes(3, x.device) == [3]
