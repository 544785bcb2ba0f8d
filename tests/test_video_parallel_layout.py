"""Multi-rank video: the layout checks, the GPU/port checks and the TPP schedule, without starting ranks."""
from __future__ import annotations

import itertools
import socket

import pytest

pytest.importorskip("torch")

from engine.video.parallel.group import (ParallelConfig, ParallelConfigError, check_devices, check_port,  # noqa: E402
                                         free_port, make_layout)
from engine.video.parallel.tpp import Msg, Plan, task_order  # noqa: E402


def pc(n, u=0, vae=False, device="cpu"):
    return ParallelConfig(num_gpus_dit=n, ulysses_size=u, enable_vae_parallel=vae, device=device)


def test_layouts():
    lay = make_layout(pc(4), 4, 40)  # one step per GPU
    assert (lay.stages, lay.sp, lay.output_rank) == (4, 1, 3)
    lay = make_layout(pc(2), 4, 40)  # more steps than GPUs: steps cycle
    assert (lay.stages, lay.steps_of(0), lay.steps_of(1)) == (2, [0, 2], [1, 3])
    lay = make_layout(pc(8), 4, 40)  # more GPUs than steps: 2-way sequence parallel inside each step
    assert (lay.stages, lay.sp, lay.stage_ranks(3)) == (4, 2, [6, 7])
    lay = make_layout(pc(4, vae=True), 4, 40)
    assert (lay.vae_rank, lay.output_rank) == (4, 4)
    lay = make_layout(pc(2), 40, 40, mode="s2v")  # S2V: all ranks share every step
    assert (lay.stages, lay.sp) == (1, 2)


@pytest.mark.parametrize("n,u,steps,heads,mode,vae,needle", [
    (3, 0, 4, 40, "liveavatar", False, "4 denoising steps do not split evenly over 3 pipeline stages"),
    (6, 0, 4, 40, "liveavatar", False, "--num_gpus_dit 6 does not split evenly over 4 denoising steps"),
    (4, 3, 4, 40, "liveavatar", False, "--ulysses_size 3 does not divide --num_gpus_dit 4"),
    (4, 1, 2, 40, "liveavatar", False, "4 pipeline stages (--num_gpus_dit 4 / --ulysses_size 1) is more than"),
    (3, 0, 40, 40, "s2v", False, "splits the 40 attention heads over 3 ranks"),
    (2, 1, 40, 40, "s2v", False, "--ulysses_size must be 2 or left out"),
    (2, 0, 40, 40, "s2v", True, "--enable_vae_parallel applies to the LiveAvatar mode"),
    (0, 0, 4, 40, "liveavatar", False, "--num_gpus_dit must be >= 1"),
])
def test_uneven_splits_are_clear_errors(n, u, steps, heads, mode, vae, needle):
    with pytest.raises(ParallelConfigError) as ei:
        make_layout(pc(n, u, vae), steps, heads, mode)
    assert needle in str(ei.value)


def test_more_gpus_than_visible_and_mixed_types(monkeypatch):
    monkeypatch.delenv("AVATAR_ALLOW_MIXED_GPUS", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    with pytest.raises(ParallelConfigError, match=r"--num_gpus_dit 4 needs 4 GPUs, 2 visible \(CUDA_VISIBLE_DEV"):
        check_devices(pc(4, device="cuda"), visible=["NVIDIA H200"] * 2)
    with pytest.raises(ParallelConfigError, match=r"\+ 1 VAE rank \(--enable_vae_parallel\) needs 3 GPUs, 2 visible"):
        check_devices(pc(2, vae=True, device="cuda"), visible=["NVIDIA H200"] * 2)
    with pytest.raises(ParallelConfigError, match="mixed types \\(NVIDIA A100, NVIDIA H200\\)"):
        check_devices(pc(2, device="cuda"), visible=["NVIDIA H200", "NVIDIA A100"])
    check_devices(pc(2, device="cuda"), visible=["NVIDIA H200", "NVIDIA H200", "NVIDIA A100"])  # only 2 used
    monkeypatch.setenv("AVATAR_ALLOW_MIXED_GPUS", "1")
    check_devices(pc(2, device="cuda"), visible=["NVIDIA H200", "NVIDIA A100"])


def test_port_in_use_is_named():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ParallelConfigError, match=f"--master_port {port} is already in use on 127.0.0.1"):
            check_port("127.0.0.1", port)
    check_port("127.0.0.1", free_port())


def test_task_order_respects_every_dependency():
    for steps, stages, blocks, flight in itertools.product((1, 2, 3, 4, 6, 8), (1, 2, 3, 4), (1, 5, 9), (1, 2, 3, 4)):
        if steps % stages:
            continue
        order = task_order(blocks, steps, stages, flight)
        pos = {t: n for n, t in enumerate(order)}
        assert len(order) == len(pos) == blocks * steps
        for (blk, i), n in pos.items():
            assert i == 0 or pos[(blk, i - 1)] < n  # the block's previous step
            assert blk == 0 or pos[(blk - 1, i)] < n  # the step's KV ring saw the previous block


def _simulate(lay, blocks, bpc, rolling=True):
    """Runs every rank's receive/send sequence with per-pair FIFO delivery (NCCL ignores tags): a deadlock or an
    out-of-order message fails."""
    plan = Plan(lay, blocks, bpc, rolling)
    fifo: dict[tuple[int, int], list[Msg]] = {}
    ranks = list(range(lay.num_gpus_dit + (1 if lay.vae_rank is not None else 0)))
    scripts = {}
    for r in ranks:
        st = lay.stage_of_rank(r)
        ops = []
        if st is None:
            src = lay.leader(lay.final_stage)
            ops = [("recv", Msg("out", b, src, r)) for b in range(blocks)]
        else:
            got_sink = False
            for blk, i in plan.tasks:
                if lay.stage_of_step(i) != st:
                    continue
                if i > 0 and lay.stage_of_step(i - 1) != st and r == lay.leader(st):
                    ops.append(("recv", Msg("x", blk, lay.leader(lay.stage_of_step(i - 1)), r, i)))
                if blk >= bpc and plan.needs_sink and st != lay.final_stage and not got_sink:
                    ops.append(("recv", Msg("sink", 0, lay.leader(lay.final_stage), r)))
                    got_sink = True
                if i < lay.steps - 1:
                    ops += [("send", m) for m in plan.sent.get(r, [])
                            if m.kind == "x" and (m.blk, m.step) == (blk, i + 1)]
                else:
                    ops += [("send", m) for m in plan.sent.get(r, []) if m.kind == "sink" and blk == 0]
                    ops += [("send", m) for m in plan.sent.get(r, []) if m.kind == "out" and m.blk == blk]
        scripts[r] = ops
    pcs = {r: 0 for r in ranks}
    kept = {r: set() for r in ranks}
    while any(pcs[r] < len(scripts[r]) for r in ranks):
        moved = False
        for r in ranks:
            while pcs[r] < len(scripts[r]):
                kind, m = scripts[r][pcs[r]]
                if kind == "send":
                    fifo.setdefault((m.src, m.dst), []).append(m)
                elif m not in kept[r]:
                    q = fifo.get((m.src, r), [])
                    while q and m not in kept[r]:
                        kept[r].add(q.pop(0))  # what the Mailbox keeps for later
                    if m not in kept[r]:
                        break
                pcs[r] += 1
                moved = True
        assert moved, f"deadlock: {lay} {blocks} blocks, {bpc} per clip"
    assert all(not q for q in fifo.values()), {k: q for k, q in fifo.items() if q}


@pytest.mark.parametrize("n,vae", [(1, True), (2, False), (2, True), (4, False), (4, True), (8, False)])
def test_message_plan_never_deadlocks(n, vae):
    for steps in (2, 4, 8):
        try:
            lay = make_layout(pc(n, vae=vae), steps, 8)
        except ParallelConfigError:
            continue
        for blocks, bpc in itertools.product((1, 3, 7), (1, 2, 4)):
            _simulate(lay, blocks, bpc)
