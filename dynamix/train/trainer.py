"""The DynaMix training loop: iteration-based, one readable class.

Per step (``train_step``):

1. a mixed batch from :class:`~dynamix.sampling.MixedBatchSampler`, two augmented views
   of every image; labels are looked up by image index in the *live* label array (they
   change at every relabeling round; −1 = filtered, ignored by every loss);
2. online features of view 2 (with gradients), momentum features of view 1 (none);
3. loss = centroid InfoNCE (separate multi-/single-camera weights; off in the
   per-batch-only ablation) + batch-hard triplet (mined within each data type) +
   consistency (online view 2 vs momentum view 1);
4. AdamW step with warm-up + cosine lr and global-norm clipping; then the momentum
   encoder's EMA update and, once per step, ``bank.update`` from this step's momentum
   features (those of view 1, computed before the EMA update: no second forward).

Every ``relabel.every`` steps after ``relabel.warmup``, a no-grad pass of the momentum
encoder over all single-camera images (cost: one inference pass over them, ~35k images
≈ 1 min on 2 CPU cores for the default world) feeds :func:`~dynamix.relabel.relabel_round`;
the new labels go to the label array and the sampler. Evaluation on the targets uses the
**momentum** encoder by default (``train.eval_model``): it is the stable encoder the
centroids and relabeling rely on and usually the better one; ``online`` is available.

Determinism and resume: one ``torch.manual_seed(train.seed)`` at construction; the
sampler has its own numpy Generator, the centroid-loss negatives their own
``torch.Generator``, and the DataLoader a dedicated generator (so creating an iterator
never draws from the global RNG). A checkpoint holds all of them plus the global torch RNG
(augmentations and drop-path draw from it), so a run killed and resumed from ``last.pt``
ends bit-identical to an uninterrupted one with ``num_workers=0`` on the CPU. With
workers, the batches are still identical (the sampler replays prefetched batches) but
the augmentations after the resume differ (worker RNGs are reseeded from the step).
DDP is not implemented; its seam is ``gather_fn`` of :meth:`CentroidBank.update`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from dynamix.centroids import CentroidBank, group_sum
from dynamix.config import Params, to_dict
from dynamix.data.images import ManifestImageDataset, build_transforms
from dynamix.errors import DynamixError
from dynamix.io import write_json_atomic
from dynamix.losses import CentroidLoss, ConsistencyLoss, IdentityClassifierLoss, TripletLoss
from dynamix.model import MomentumEncoder, ReIDModel
from dynamix.relabel import label_quality, relabel_round
from dynamix.sampling import SINGLE, MixedBatchSampler
from dynamix.train.callbacks import Callback, JsonlLogger
from dynamix.train.data import target_splits, train_table, true_ids
from dynamix.train.features import extract_features
from dynamix.train.schedule import lr_at
from dynamix.train.state import load_checkpoint, save_checkpoint

log = logging.getLogger(__name__)

EVAL_KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DynamixError(f"train.device={name} but CUDA is not available; use auto or cpu")
    return torch.device(name)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: no weight decay on biases, norms, position embeddings, cls token."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = p.ndim <= 1 or name.endswith(("pos_embed", "cls_token"))
        (no_decay if skip else decay).append(p)
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


class Trainer:
    """Builds the run from ``params`` (fresh, or from ``<out_dir>/last.pt`` with ``resume``)."""

    def __init__(
        self, params: Params, *, resume: bool = False, callbacks: Sequence[Callback] = ()
    ) -> None:
        self.params, self.cfg = params, params.train
        cfg, mcfg = self.cfg, params.model
        self.out_dir = Path(cfg.out_dir)
        self.device = resolve_device(cfg.device)
        self.amp = cfg.amp and self.device.type == "cuda"  # bf16: no loss scaler needed
        if cfg.eval_model not in ("momentum", "online"):
            raise DynamixError(
                f"train.eval_model must be momentum or online, not {cfg.eval_model!r}"
            )
        state = load_checkpoint(self.out_dir / "last.pt") if resume else None
        torch.manual_seed(cfg.seed)  # the one global seed; everything else has its own RNG

        # data: the training table and its live labels (the bank's id space)
        self.table = train_table(params, single_camera=cfg.sampler.single_camera)
        self.paths = self.table["path"].astype(str).tolist()
        self.initial_labels = self.table["train_pid"].to_numpy().copy()  # (N,)
        self.labels = self.initial_labels.copy()  # (N,) live; −1 = filtered
        self.single_images = (self.table["source_kind"] == "single_camera").to_numpy()  # (N,)
        num_ids = int(self.initial_labels.max()) + 1
        self.single_ids = np.zeros(num_ids, dtype=bool)  # (C,)
        self.single_ids[self.initial_labels[self.single_images]] = True
        self.true_ids = true_ids(params, self.table)  # reporting only, never training
        self.targets = target_splits(params)
        self.img_size = (mcfg.img_height, mcfg.img_width)

        # model, momentum encoder, centroid bank, optimizer, losses
        self.model = ReIDModel(
            mcfg.arch, self.img_size, mcfg.pretrained_path, mcfg.drop_path_rate,
            depth=mcfg.depth, global_pool=mcfg.global_pool,
        ).to(self.device)  # fmt: skip
        self.momentum = MomentumEncoder(self.model, mcfg.momentum, mcfg.momentum_warmup)
        self.bank = CentroidBank(num_ids, self.model.embed_dim, cfg.centroid_dtype, self.device)
        lc = cfg.loss
        # ID cross-entropy: one classifier row per multi-camera id (−1 = single-camera id).
        multi_ids = np.unique(self.initial_labels[~self.single_images])
        self.class_of = np.full(num_ids, -1, dtype=np.int64)  # (C,)
        self.class_of[multi_ids] = np.arange(len(multi_ids))
        self.id_loss = None
        trainable = [*param_groups(self.model, cfg.weight_decay)]
        if lc.w_id > 0:
            self.id_loss = IdentityClassifierLoss(
                self.model.embed_dim, len(multi_ids), lc.id_temperature, lc.id_label_smoothing
            ).to(self.device)
            trainable.append({"params": list(self.id_loss.parameters()), "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(trainable, lr=cfg.lr)
        self.centroid_loss = CentroidLoss(lc.temperature, lc.num_negatives, lc.hard_fraction)
        self.triplet_loss = TripletLoss(lc.triplet_margin)
        self.consistency_loss = ConsistencyLoss(lc.consistency_kind, lc.temperature)
        self.loss_generator = torch.Generator().manual_seed(cfg.seed)

        self.step = 0
        self.best_map, self.best_step = float("-inf"), -1
        self.last_eval: dict[str, Any] = {}
        self.relabel_rounds = 0
        if state is not None:
            self._load(state)
        else:
            self.init_bank()
        self.sampler = self._build_sampler()
        if state is not None:
            self.sampler.load_state_dict(state["sampler"])
        self.dataset = ManifestImageDataset(
            self.paths, transform=build_transforms(self.img_size, train=True), two_views=True
        )
        resume_step = self.step if resume else None
        self.callbacks = [JsonlLogger(self.out_dir, resume_step), *callbacks]

    # ---- setup -------------------------------------------------------------------------
    def _features(self, encoder: torch.nn.Module, paths: Sequence[str]) -> torch.Tensor:
        return extract_features(
            encoder, paths, img_size=self.img_size, batch_size=self.cfg.eval_batch_size,
            num_workers=self.cfg.num_workers, device=self.device, amp=self.amp,
        )  # fmt: skip

    def init_bank(self) -> None:
        """Centroids = mean momentum feature per id over every train image (one pass)."""
        t0 = time.perf_counter()
        feats = self._features(self.momentum, self.paths)  # (N, D)
        self.bank.init_from(feats, torch.from_numpy(self.labels))
        self.bank.finish_init()
        log.info("centroid bank: %d ids from %d images in %.1fs", self.bank.num_ids,
                 len(self.paths), time.perf_counter() - t0)  # fmt: skip

    def _build_sampler(self) -> MixedBatchSampler:
        sc = self.cfg.sampler
        return MixedBatchSampler(
            self.labels, self.table["train_camid"].to_numpy(), self.single_images,
            p_m=sc.p_m if sc.single_camera else sc.p_m + sc.p_s, p_s=sc.p_s, k=sc.k,
            matching=sc.matching, single_camera=sc.single_camera, centroids=self.bank,
            seed=self.cfg.seed,
        )  # fmt: skip

    def _loader(self) -> DataLoader:
        # A dedicated generator: creating the iterator must not draw from the global RNG.
        generator = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step)
        return DataLoader(
            self.dataset, batch_sampler=self.sampler, num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda", generator=generator,
        )  # fmt: skip

    # ---- one step ----------------------------------------------------------------------
    def train_step(
        self, view1: torch.Tensor, view2: torch.Tensor, index: torch.Tensor
    ) -> dict[str, float]:
        """One optimizer step: two views (B, 3, H, W) of the images ``index`` (B,)."""
        cfg, lc = self.cfg, self.cfg.loss
        lr = lr_at(self.step, base_lr=cfg.lr, warmup=cfg.warmup_iters, total=cfg.iters,
                   min_ratio=cfg.min_lr_ratio)  # fmt: skip
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        idx = index.numpy()
        labels = torch.from_numpy(self.labels[idx]).to(self.device)  # (B,) live labels
        groups = torch.from_numpy(self.single_images[idx].astype(np.int64)).to(self.device)
        view1, view2 = view1.to(self.device), view2.to(self.device)
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            online = self.model(view2)  # (B, D)
            target = self.momentum(view1)  # (B, D), no grad
        parts: dict[str, torch.Tensor] = {}
        if lc.centroid:
            weights = torch.where(groups == SINGLE, lc.w_centroid_single, lc.w_centroid_multi)
            parts["centroid"] = self.centroid_loss(
                online, labels, self.bank.centroids, weights=weights,
                valid_mask=self.bank.initialized, generator=self.loss_generator,
            )  # fmt: skip
        if self.id_loss is not None:
            classes = torch.from_numpy(self.class_of[np.maximum(self.labels[idx], 0)])
            classes[labels.cpu() < 0] = -1
            parts["id"] = lc.w_id * self.id_loss(online, classes.to(self.device))
        parts["triplet"] = lc.w_triplet * self.triplet_loss(online, labels, groups)
        kl_centroids = self.bank.centroids if lc.consistency_kind == "kl" else None
        parts["consistency"] = lc.w_consistency * self.consistency_loss(
            online, target, kl_centroids
        )
        loss = sum(parts.values())
        if not torch.isfinite(loss):
            raise DynamixError(f"loss is {loss.item()} at step {self.step}; lower train.lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        self.momentum.update(self.model, step=self.step)
        self.bank.update(target.float(), labels, cfg.centroid_momentum)  # DDP: gather_fn here
        self.step += 1
        metrics = {f"loss_{k}": float(v.detach()) for k, v in parts.items()}
        metrics.update(loss=float(loss.detach()), lr=lr, grad_norm=float(grad_norm),
                       batch=len(idx), single_images=int(groups.sum()))  # fmt: skip
        return metrics

    # ---- relabeling and evaluation -----------------------------------------------------
    def relabel(self) -> dict[str, Any]:
        """One relabeling round on the single-camera images (momentum features, no grad)."""
        rc = self.cfg.relabel
        rows = np.flatnonzero(self.single_images)
        t0 = time.perf_counter()
        feats = self._features(self.momentum, [self.paths[i] for i in rows])  # (S, D)
        labels = self.labels[rows]  # (S,)
        if rc.refresh_centroids:
            live = torch.from_numpy(labels >= 0)
            ids, sums, _ = group_sum(feats[live], torch.from_numpy(labels)[live])
            fresh = F.normalize(sums, dim=1).to(self.bank.dtype)
            self.bank.centroids.index_copy_(0, ids.to(self.device), fresh.to(self.device))
        truth = None if self.true_ids is None else self.true_ids[rows]
        snapshot = self.bank.state_dict()  # (C, D) copy: to undo a rejected round
        live_ids = len(np.unique(labels[labels >= 0]))
        result = relabel_round(
            feats, labels, self.bank, self.single_ids, tau_filter=rc.tau_filter,
            tau_relabel=rc.tau_relabel, margin=rc.margin, tau_merge=rc.tau_merge,
            topk=rc.topk, mutual=rc.mutual, merge=rc.merge, true_ids=truth,
        )  # fmt: skip
        new_labels = self.labels.copy()
        new_labels[rows] = result.labels
        stats = {**result.stats.as_dict(), "seconds": time.perf_counter() - t0}
        reason = None
        if result.stats.ids_merged > rc.max_merge_fraction * live_ids:
            reason = f"merges {result.stats.ids_merged} of {live_ids} ids"
        else:
            try:
                self.sampler.update_labels(new_labels)
            except DynamixError as exc:  # e.g. too few single-camera ids left for a batch
                reason = str(exc)
        stats["rejected"] = reason is not None
        if reason is not None:
            self.bank.load_state_dict(snapshot)
            log.warning("relabel round at step %d rejected (%s); labels kept", self.step, reason)
        else:
            self.labels = new_labels
            self.relabel_rounds += 1
        for cb in self.callbacks:
            cb.on_relabel(self.step, stats)
        return stats

    def evaluate(self) -> dict[str, Any]:
        """Market-1501 metrics on every target; updates ``best.pt`` by mean target mAP."""
        from dynamix.evaluation import evaluate_features

        ev = self.params.evaluation
        encoder = self.momentum if self.cfg.eval_model == "momentum" else self.model
        results: dict[str, Any] = {}
        for name, (query, gallery) in self.targets.items():
            qf = self._features(encoder, query["path"].astype(str).tolist())
            gf = self._features(encoder, gallery["path"].astype(str).tolist())
            result = evaluate_features(
                qf, gf, query["pid"].to_numpy(), gallery["pid"].to_numpy(),
                query["camid"].to_numpy(), gallery["camid"].to_numpy(),
                max_rank=ev.max_rank, metric=ev.metric, block_size=ev.block_size,
            ).as_dict()  # fmt: skip
            results[name] = {k: result[k] for k in (*EVAL_KEYS, "num_valid_query") if k in result}
        mean_map = float(np.mean([r["mAP"] for r in results.values()]))
        self.last_eval = {"step": self.step, "targets": results, "mean_mAP": mean_map}
        flat = {f"{n}/{k}": v for n, r in results.items() for k, v in r.items()}
        for cb in self.callbacks:
            cb.on_eval(self.step, {**flat, "mean_mAP": mean_map})
        log.info("step %d: mean target mAP %.4f (%s)", self.step, mean_map,
                 ", ".join(f"{n} {r['mAP']:.4f}" for n, r in results.items()))  # fmt: skip
        if mean_map > self.best_map:
            self.best_map, self.best_step = mean_map, self.step
            self.save("best.pt")
        return self.last_eval

    # ---- the loop ----------------------------------------------------------------------
    def _due(self, every: int) -> bool:
        return (every > 0 and self.step % every == 0) or self.step == self.cfg.iters

    def _relabel_due(self) -> bool:
        rc = self.cfg.relabel
        return (
            rc.enabled and self.cfg.sampler.single_camera and self.step < self.cfg.iters
            and self.step >= rc.warmup and (self.step - rc.warmup) % max(rc.every, 1) == 0
        )  # fmt: skip

    def fit(self) -> dict[str, Any]:
        """Train until ``train.iters``; returns (and writes) ``<out_dir>/metrics.json``."""
        write_json_atomic(self.out_dir / "params.json", to_dict(self.params))
        batches = iter(self._loader()) if self.step < self.cfg.iters else iter(())
        tick = time.perf_counter()
        while self.step < self.cfg.iters:
            view1, view2, index = next(batches)
            metrics = self.train_step(view1, view2, index)
            now = time.perf_counter()
            metrics["img_s"] = metrics["batch"] / max(now - tick, 1e-9)
            tick = now
            for cb in self.callbacks:
                cb.on_step(self.step, metrics)
            if self._relabel_due():
                self.relabel()
            if self._due(self.cfg.eval_every):
                self.evaluate()
            if self._due(self.cfg.checkpoint_every):
                self.save("last.pt")
            tick = time.perf_counter()  # img/s counts data + step, not eval/relabel/save
        if not self.last_eval:
            self.evaluate()
        return self.write_metrics()

    # ---- results and state -------------------------------------------------------------
    def write_metrics(self) -> dict[str, Any]:
        summary: dict[str, Any] = {
            **self.last_eval,
            "best_mean_mAP": self.best_map,
            "best_step": self.best_step,
            "eval_model": self.cfg.eval_model,
            "relabel_rounds": self.relabel_rounds,
            "single_camera_images": int(self.single_images.sum()),
            "single_camera_images_kept": int((self.labels[self.single_images] >= 0).sum()),
        }
        if self.true_ids is not None and self.single_images.any():
            truth = self.true_ids[self.single_images]
            summary["label_quality"] = {
                "before": label_quality(self.initial_labels[self.single_images], truth),
                "after": label_quality(self.labels[self.single_images], truth),
            }
        write_json_atomic(self.out_dir / "metrics.json", summary)
        return summary

    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs; only tensors, numbers, strings, lists and dicts."""
        rng = {"torch": torch.get_rng_state(), "loss": self.loss_generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {
            "step": self.step,
            "best_map": self.best_map,
            "best_step": self.best_step,
            "relabel_rounds": self.relabel_rounds,
            "last_eval": self.last_eval,
            "model": self.model.state_dict(),
            "momentum": self.momentum.state_dict(),
            "bank": self.bank.state_dict(),
            "labels": torch.from_numpy(self.labels.copy()),
            "sampler": self.sampler.state_dict(consumed=self.step),
            "optimizer": self.optimizer.state_dict(),
            "id_classifier": None if self.id_loss is None else self.id_loss.state_dict(),
            "rng": rng,
            "params": to_dict(self.params),
        }

    def _load(self, state: dict[str, Any]) -> None:
        labels = state["labels"].numpy()
        if labels.shape != self.labels.shape:
            raise DynamixError(
                f"{self.out_dir / 'last.pt'}: checkpoint has {len(labels)} train images, the "
                f"manifests give {len(self.labels)}; resume with the same data or start anew"
            )
        self.labels = labels.astype(np.int64).copy()
        self.model.load_state_dict(state["model"])
        self.momentum.load_state_dict(state["momentum"])
        self.bank.load_state_dict(state["bank"])
        if self.id_loss is not None:
            if state.get("id_classifier") is None:
                raise DynamixError(
                    f"{self.out_dir / 'last.pt'}: checkpoint has no ID classifier but "
                    "train.loss.w_id > 0; resume with the run's own params or start anew"
                )
            self.id_loss.load_state_dict(state["id_classifier"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.relabel_rounds = int(state["step"]), int(state["relabel_rounds"])
        self.best_map, self.best_step = float(state["best_map"]), int(state["best_step"])
        self.last_eval = state["last_eval"]
        torch.set_rng_state(state["rng"]["torch"])
        self.loss_generator.set_state(state["rng"]["loss"])
        if "cuda" in state["rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng"]["cuda"], self.device)
        log.info("resumed from %s at step %d", self.out_dir / "last.pt", self.step)

    def save(self, name: str) -> Path:
        path = save_checkpoint(self.state_dict(), self.out_dir / name)
        for cb in self.callbacks:
            cb.on_checkpoint(self.step, path)
        return path


def train(
    params: Params, *, resume: bool = False, callbacks: Sequence[Callback] = ()
) -> dict[str, Any]:
    """Run (or resume) a training run; returns the final metrics."""
    return Trainer(params, resume=resume, callbacks=callbacks).fit()
