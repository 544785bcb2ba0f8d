"""Train learned-v1 from scratch on espeak-ng speech; writes a from_pretrained directory.

Reproduces the shipped weights (engine/expression/weights/learned-v1) with the
defaults: ``avatar-bridge train-expression --out DIR`` (docs/learned_engine.md
gives the time it takes). Deterministic for a given seed and thread count.
"""
from __future__ import annotations

import math
import random
import time

import numpy as np
import torch

from engine.expression.learned_runtime import ModelConfig
from engine.expression.train.torch_net import ExpressionNet, n_params
from engine.expression.train.data import Example, build
from engine.expression.train.teacher import jaw_target


def _batch(data: list[Example], jaws: dict[int, np.ndarray], rng: random.Random, bs: int, T: int,
           real: list[Example] | None = None, real_share: float = 0.0):
    """A batch of random crops; each crop comes from ``real`` with probability ``real_share``."""
    n_mels = data[0].feats.shape[1]
    f = np.zeros((bs, T, n_mels), np.float32)
    f[:] = np.log(1e-10)  # padding reads as digital silence
    lab = np.zeros((bs, T), np.int64)
    jw = np.zeros((bs, T), np.float32)
    mask = np.zeros((bs, T), np.float32)
    for b in range(bs):
        pool = real if real and rng.random() < real_share else data
        e = pool[rng.randrange(len(pool))]
        n = len(e.labels)
        s = rng.randrange(max(1, n - T // 2))  # crops may start anywhere, also mid-utterance
        m = min(T, n - s)
        f[b, :m], lab[b, :m], jw[b, :m] = e.feats[s:s + m], e.labels[s:s + m], jaws[id(e)][s:s + m]
        mask[b, :m] = 1.0
    return torch.from_numpy(f), torch.from_numpy(lab), torch.from_numpy(jw), torch.from_numpy(mask)


def evaluate(net: ExpressionNet, data: list[Example]) -> dict:
    """Frame accuracy of the viseme class (at the trained delay), overall and per language."""
    d = net.cfg.delay
    hits: dict[str, list[int]] = {}
    with torch.no_grad():
        for e in data:
            logits, _, _ = net(torch.from_numpy(e.feats)[None])
            pred = logits[0, d:].argmax(-1).numpy()
            h = hits.setdefault(e.lang, [0, 0])
            h[0] += int((pred == e.labels[: len(pred)]).sum())
            h[1] += len(pred)
    correct = sum(h[0] for h in hits.values())
    total = sum(h[1] for h in hits.values())
    return {"frame_acc": correct / max(1, total),
            "frame_acc_by_language": {k: round(h[0] / max(1, h[1]), 3) for k, h in sorted(hits.items())}}


def _dataset(utterances: int, seed: int, cfg: ModelConfig, cache: str | None, log) -> tuple[list, list]:
    """(train, validation) examples; cached as a pickle when ``cache`` is given (same args -> same data)."""
    import pickle
    from pathlib import Path

    path = Path(cache) / f"espeak-{utterances}-{seed}-{cfg.n_mels}.pkl" if cache else None
    if path and path.exists():
        log(f"data from cache {path}")
        return pickle.loads(path.read_bytes())
    log(f"building {utterances} training utterances (espeak-ng, augmented) ...")
    data = build(utterances, seed, cfg, log=log)
    val = build(max(4, utterances // 20), seed + 1, cfg, log=None)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps((data, val), protocol=pickle.HIGHEST_PROTOCOL))
    return data, val


def train(out_dir: str, utterances: int = 2500, steps: int = 2000, seed: int = 1234, threads: int = 2,
          batch: int = 16, crop: int = 200, lr: float = 3e-3, cfg: ModelConfig | None = None, log=print,
          data_cache: str | None = None, real: list[Example] | None = None, real_share: float = 0.6,
          provenance: dict | None = None) -> dict:
    t0 = time.monotonic()
    log = log or (lambda *_: None)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    cfg = cfg or ModelConfig()
    data, val = _dataset(utterances, seed, cfg, data_cache, log)
    t_data = time.monotonic() - t0
    log(f"  {len(data)} clips, {sum(len(e.labels) for e in data) / 6000:.1f} min of audio in {t_data:.0f} s")
    real = real or []
    jaws = {id(e): jaw_target(e.labels) for e in data + real}
    if real:
        log(f"  + {len(real)} real-speech examples, {sum(len(e.labels) for e in real) / 6000:.1f} min, "
            f"{real_share:.0%} of the crops")

    net = ExpressionNet(cfg)
    allf = np.concatenate([e.feats for e in data + real])
    net.mean.copy_(torch.from_numpy(allf.mean(0)))
    net.std.copy_(torch.from_numpy(allf.std(0) + 1e-3))
    del allf
    log(f"model: {n_params(net)} parameters, look-ahead delay {cfg.delay} x 10 ms")
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / 100) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    ce = torch.nn.CrossEntropyLoss(reduction="none", label_smoothing=0.05)
    rng = random.Random(seed)
    d = cfg.delay
    net.train()
    for step in range(steps):
        f, lab, jw, mask = _batch(data, jaws, rng, batch, crop, real, real_share)
        logits, jaw, _ = net(f)
        # Output step j describes frame j - d: that is the look-ahead.
        m = mask[:, : crop - d]
        l_cls = (ce(logits[:, d:].reshape(-1, cfg.n_visemes), lab[:, : crop - d].reshape(-1))
                 * m.reshape(-1)).sum() / m.sum()
        l_jaw = (((jaw[:, d:] - jw[:, : crop - d]) ** 2) * m).sum() / m.sum()
        loss = l_cls + 20.0 * l_jaw
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if (step % 250 == 0 or step == steps - 1):
            log(f"  step {step}/{steps} loss {loss.item():.3f} (cls {l_cls.item():.3f}, jaw {l_jaw.item():.4f}) "
                f"{time.monotonic() - t0:.0f} s")
    net.eval()
    metrics = evaluate(net, val)
    metrics.update(train_seconds=round(time.monotonic() - t0, 1), data_seconds=round(t_data, 1),
                   utterances=utterances, steps=steps, seed=seed, threads=threads, params=n_params(net),
                   real_examples=len(real), real_minutes=round(sum(len(e.labels) for e in real) / 6000, 1),
                   real_share=real_share if real else 0.0)
    if provenance:
        metrics["real_speech"] = provenance
    net.save_pretrained(out_dir, extra={"training": metrics})
    log(f"validation (held-out espeak-ng clips): {metrics}")
    return metrics
