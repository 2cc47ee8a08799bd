"""DistributedDataParallel with gradient checkpointing, as the Trainer runs it on several processes.

The Trainer passes `find_unused_parameters=False` to DDP whenever gradient checkpointing is on. A parameter that
requires a gradient but gets none then fails the second step ("Expected to have finished reduction in the prior
iteration"). AdapLeR with its token removal off (`inference_mode="off"` or `adaptive=False`, the README's route for
fine-tuning the backbone with a stock script) leaves η, θ and the contribution predictors unused, so it freezes them.
Two CPU processes on the gloo backend, over the loopback interface; a few seconds.
"""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

WORLD_SIZE = 2
STEPS = 3


def train_a_few_steps(rank: int, port: int, family: str, switch: dict, results) -> None:
    """One DDP process: a few checkpointed training steps of the family's tiny model with `switch` set."""
    from test_adapler import AdapLeRModelTester, AdapLeRRobertaModelTester

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD_SIZE)
    try:
        tester = {"adapler": AdapLeRModelTester, "adapler_roberta": AdapLeRRobertaModelTester}[family]()
        model = tester.create_model(**switch)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
        model.train()
        parallel = DistributedDataParallel(model, find_unused_parameters=False)
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
        generator = torch.Generator().manual_seed(rank)
        input_ids = torch.randint(5, 99, (4, 9), generator=generator)
        labels = torch.arange(4) % model.config.num_labels
        losses = []
        for _ in range(STEPS):
            loss = parallel(input_ids=input_ids, attention_mask=torch.ones_like(input_ids), labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(float(loss))
        results[rank] = losses
    except Exception as error:  # noqa: BLE001 - reported to the test process
        results[rank] = f"{type(error).__name__}: {error}"
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("family", ["adapler", "adapler_roberta"])
@pytest.mark.parametrize("switch", [{"inference_mode": "off"}, {"adaptive": False}], ids=["mode_off", "adaptive_false"])
def test_ddp_with_gradient_checkpointing_trains_with_token_removal_off(family, switch):
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(train_a_few_steps, args=(free_port(), family, switch, results), nprocs=WORLD_SIZE, join=True)
        results = dict(results)
    for rank in range(WORLD_SIZE):
        assert isinstance(results[rank], list), f"rank {rank}: {results[rank]}"
        assert len(results[rank]) == STEPS


def test_unused_adaptive_parts_are_frozen_and_come_back_with_the_setting():
    from test_adapler import AdapLeRModelTester

    model = AdapLeRModelTester().create_model(inference_mode="off")
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert frozen == set(model.adaptive_part_names())
    model.config.inference_mode = "remove"
    model.train()  # the Trainer calls train() before its steps
    assert all(p.requires_grad for p in model.parameters())
    model.config.adaptive = False
    model.eval()
    assert {name for name, p in model.named_parameters() if not p.requires_grad} == frozen
