"""Block-wise weight streaming of the DiT from pinned host memory (``--offload_dit``, issue 17's small-GPU mode).

Each unit (one DiT block, plus the audio injector that follows it) keeps its tensors in ONE pinned host buffer,
laid out at 256-byte aligned offsets. Two device slots, each as large as the largest unit, take turns: while
unit i computes in slot i%2, unit i+1 is copied into the other slot on a side CUDA stream (one large copy), so the
copy hides behind the compute. The parameters (and FP8 packs, ``speed.quantize_dit``) point at the device slot
only between ``acquire(i)`` and ``release(i)``; otherwise at their host copy. Everything else of the DiT
(embeddings, head, audio encoder, frame packer: ~0.6 GB) stays on the device.

The copies are exact (bytes), so a streamed run computes the same numbers as a resident one. On the CPU (tests)
the "device" slot is another host buffer and the copies are plain copies.
"""
from __future__ import annotations

import logging

import torch

from engine.video.speed import SpeedConfigError

log = logging.getLogger("engine.video.offload")

ALIGN = 256


def host_available_bytes() -> int | None:
    """MemAvailable of this machine (Linux), None where it cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def check_host_memory(need: int, what: str, available: int | None = None) -> None:
    """``SpeedConfigError`` naming the knobs when ``need`` bytes of host memory are not available."""
    avail = host_available_bytes() if available is None else available
    if avail is not None and need > avail:
        raise SpeedConfigError(
            f"--offload_dit needs about {need / 2**30:.1f} GiB of free host memory for {what}; "
            f"{avail / 2**30:.1f} GiB are available. Free host memory, or lower it: --quant fp8 (FP8 weights), "
            f"--kv_cache fp8, --offload_dit weights (KV caches stay on the GPU), a smaller --size or --infer_frames")


def layer_units(dit) -> list[list[torch.nn.Module]]:
    """The modules each streamed unit holds: block i, plus the audio injector (attention + AdaLN) that runs
    right after it."""
    inj = dit.audio_injector
    units = []
    for blk in dit.blocks:
        mods = [blk]
        j = inj.block_to_slot.get(blk.index)
        if j is not None:
            mods += [inj.injector[j], inj.injector_adain_layers[j]]
        units.append(mods)
    return units


class _Unit:
    """One unit's tensor slots: (setter, shape, dtype, offset, nbytes) and its pinned host buffer."""

    def __init__(self, modules: list[torch.nn.Module]):
        self.slots = []  # (kind, owner, key, index)
        self.specs = []  # (shape, dtype, offset, nbytes)
        off = 0
        for top in modules:
            for mod in top.modules():
                for name, p in mod.named_parameters(recurse=False):
                    if p.numel():
                        off = self._add(("param", mod, name, None), p, off)
                pk = getattr(mod, "_fp8", None)
                if pk is not None:
                    for j, t in enumerate(pk):
                        if isinstance(t, torch.Tensor) and t.numel():
                            off = self._add(("fp8", mod, "_fp8", j), t, off)
        self.nbytes = off
        self.host = None

    def _add(self, slot, t: torch.Tensor, off: int) -> int:
        nb = t.numel() * t.element_size()
        self.slots.append(slot)
        self.specs.append((tuple(t.shape), t.dtype, off, nb))
        return off + (nb + ALIGN - 1) // ALIGN * ALIGN

    def tensors(self):
        for kind, mod, key, j in self.slots:
            yield getattr(mod, key) if kind == "param" else getattr(mod, key)[j]

    def point(self, flat: torch.Tensor) -> None:
        """Make every slot a view of ``flat`` (uint8) at its offset."""
        for (kind, mod, key, j), (shape, dtype, off, nb) in zip(self.slots, self.specs):
            view = flat[off:off + nb].view(dtype).view(shape)
            if kind == "param":
                getattr(mod, key).data = view
            else:
                pk = list(getattr(mod, key))
                pk[j] = view
                setattr(mod, key, tuple(pk))

    def to_host(self, pin: bool) -> None:
        self.host = torch.empty(self.nbytes, dtype=torch.uint8, pin_memory=pin)
        for t, (shape, dtype, off, nb) in zip(list(self.tensors()), self.specs):
            self.host[off:off + nb].view(dtype).view(shape).copy_(t)
        self.point(self.host)


class LayerStreamer:
    """Stream the DiT's blocks through two device slots; see the module docstring."""

    def __init__(self, dit, device, check_memory: bool = True):
        self.device = torch.device(device)
        cuda = self.device.type == "cuda"
        self.units = [_Unit(m) for m in layer_units(dit)]
        total = sum(u.nbytes for u in self.units)
        already_host = all(t.device.type == "cpu" for u in self.units for t in u.tensors())
        if check_memory:
            # Weights loaded on the host are copied unit by unit (each original freed after), so only the
            # largest unit is extra; weights on the device need the whole pinned copy.
            check_host_memory(max(u.nbytes for u in self.units) if already_host else total, "the DiT weights")
        for u in self.units:
            u.to_host(pin=cuda)
        # Everything that is not a streamed block lives on the device.
        streamed = {id(p) for u in self.units for kind, mod, key, _ in u.slots if kind == "param"
                    for p in [getattr(mod, key)]}
        for name, p in dit.named_parameters():
            if id(p) not in streamed and p.device != self.device:
                p.data = p.data.to(self.device)
        size = max(u.nbytes for u in self.units)
        self.slots = [torch.empty(size, dtype=torch.uint8, device=self.device) for _ in range(2)]
        self.host_bytes, self.slot_bytes = total, size
        self.loaded = [None, None]  # unit index held by each slot
        self.copied_bytes = 0
        self.resident: set[int] = set()  # units pointing at a device slot now (at most one)
        self.side = torch.cuda.Stream(self.device) if cuda else None
        self.ready = [None, None]  # event: copy into the slot done
        self.free = [None, None]  # event: compute on the slot's previous unit done
        self.last = 0  # slot of the unit acquired last
        dit._streamer = self
        log.info("DiT streamed from pinned host memory: %.1f GiB on the host, 2 device slots of %.2f GiB",
                 total / 2**30, size / 2**30)

    def _copy(self, i: int, s: int) -> None:
        if self.loaded[s] == i:
            return
        u = self.units[i]
        if self.side is None:
            self.slots[s][:u.nbytes].copy_(u.host)
        else:
            with torch.cuda.stream(self.side):
                if self.free[s] is not None:
                    self.side.wait_event(self.free[s])  # the slot's previous unit has finished computing
                self.slots[s][:u.nbytes].copy_(u.host, non_blocking=True)
                ev = torch.cuda.Event()
                ev.record(self.side)
                self.ready[s] = ev
        self.loaded[s] = i
        self.copied_bytes += u.nbytes

    def acquire(self, i: int) -> None:
        """Point unit i at a device slot (copying it if no prefetch did) and prefetch the next unit."""
        s = self.loaded.index(i) if i in self.loaded else (0 if self.loaded[0] is None else
                                                            1 if self.loaded[1] is None else 1 - self.last)
        self._copy(i, s)
        if self.side is not None and self.ready[s] is not None:
            torch.cuda.current_stream(self.device).wait_event(self.ready[s])
        self.units[i].point(self.slots[s])
        self.resident.add(i)
        self.last = s
        if len(self.units) > 1:
            self._copy((i + 1) % len(self.units), 1 - s)  # the other slot: its unit was released already

    def release(self, i: int) -> None:
        s = self.loaded.index(i)
        u = self.units[i]
        u.point(u.host)
        self.resident.discard(i)
        if self.side is not None:
            ev = torch.cuda.Event()
            ev.record(torch.cuda.current_stream(self.device))
            self.free[s] = ev
