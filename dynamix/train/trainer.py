"""The DynaMix training loop: iteration-based, one readable class.

Per step (``train_step``):

1. a mixed batch from :class:`~dynamix.sampling.MixedBatchSampler`, two augmented views
   of every image; labels are looked up by image index in the *live* label array (they
   change with every relabeling decision; −1 = filtered, ignored by every loss);
2. online features of view 2 (with gradients), momentum features of view 1 (none);
3. on-the-fly relabeling (``train.relabel``): the momentum features of the batch's
   single-camera images are judged against the centroid bank
   (:meth:`~dynamix.relabel.online.OnlineRelabeler.judge`): an image far below its own
   centroid is filtered, one clearly closer to an id of its video (or a kNN neighbour of
   its id) is moved, and this step's losses already use the new labels;
4. loss = centroid InfoNCE (separate multi-/single-camera weights; off in the
   per-batch-only ablation) + batch-hard triplet (mined within each data type, with the
   batch's single-camera images also negatives of multi-camera anchors) + consistency
   (online view 2 vs momentum view 1);
5. AdamW step with warm-up + cosine lr and global-norm clipping; then the momentum
   encoder's EMA update and, once per step, ``bank.update`` from this step's momentum
   features (those of view 1, computed before the EMA update: no second forward).

The bank has no initial pass (``train.bank_init: first_sight``): a centroid starts at its
id's first batch. Every ``relabel.every`` steps from ``relabel.warmup`` a window closes
(:meth:`~dynamix.relabel.online.OnlineRelabeler.end_window`): ids are merged from the
bank alone and the window's actions are reported (the last step closes the open window
without a merge, so every decision is reported), with their precision against the
synthetic ground truth where it exists (reporting only). No step ever makes a pass over
the single-camera set (periodic full-pass rounds lost the ablation and were removed:
docs/ablation.md).

Evaluation uses the **momentum** encoder by default (``train.eval_model``). It scores the
targets (reported, gated later) and the ``source-holdout`` split of held-out labelled
source identities, which alone decides ``best.pt`` (:mod:`dynamix.evaluation.holdout`).

Determinism and resume: one ``torch.manual_seed(train.seed)`` at construction; the
sampler has its own numpy Generator, the centroid-loss negatives their own
``torch.Generator``, and the DataLoader a dedicated generator (so creating an iterator
never draws from the global RNG). A checkpoint holds all of them plus the global torch RNG
(augmentations and drop-path draw from it), so a run killed and resumed from ``last.pt``
ends bit-identical to an uninterrupted one with ``num_workers=0`` on the CPU. With
workers, the batches are still identical (the sampler replays prefetched batches) but
the augmentations after the resume differ (worker RNGs are reseeded from the step).

Multi-process (DDP, ``torchrun --nproc_per_node=N``; :mod:`dynamix.train.distributed`):
every rank draws its *own* batch (sampler, augmentation, negatives and loader seeds are
``seed + 1000·rank``, so rank 0 of N runs the single-process streams) and the online
model is wrapped in ``DistributedDataParallel`` (gradients averaged; parameters outside
it, e.g. a classifier, are all-reduced by hand; BN-neck running statistics are rank 0's,
copied to all ranks after every step). The state that must stay identical is kept so by
construction: ``bank.update`` all-gathers the momentum features of every rank first, and
the bank initialisation, the relabeling windows and the evaluation run on rank 0 only,
their results (bank, labels, metrics) broadcast. Only rank 0 writes files and calls the
callbacks; a checkpoint also holds every rank's sampler and RNG states (``ranks``), so a
resume with the same N continues each rank's stream (exact on the CPU, as above).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from dynamix.centroids import CentroidBank
from dynamix.config import Params, to_dict
from dynamix.data.images import ManifestImageDataset, build_transforms
from dynamix.errors import DynamixError
from dynamix.evaluation.targets import evaluate_encoder, mean_map, target_splits
from dynamix.io import write_json_atomic
from dynamix.losses import CentroidLoss, ConsistencyLoss, IdentityClassifierLoss, TripletLoss
from dynamix.model import MomentumEncoder, ReIDModel
from dynamix.relabel import label_quality
from dynamix.relabel.online import OnlineRelabeler
from dynamix.sampling import SINGLE, MixedBatchSampler
from dynamix.train import distributed
from dynamix.train.callbacks import Callback, JsonlLogger
from dynamix.train.data import selection_splits, train_table, true_ids
from dynamix.train.eval_record import evaluated_on
from dynamix.train.features import extract_features
from dynamix.train.preflight import mark_unfinished, prepare_out_dir
from dynamix.train.schedule import lr_at
from dynamix.train.state import load_checkpoint, save_checkpoint
from dynamix.train.videos import VideoGroups

log = logging.getLogger(__name__)


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
    """Builds the run from ``params`` (fresh, or from ``<out_dir>/last.pt`` with ``resume``).

    A fresh run refuses an ``out_dir`` that holds a previous run's files unless
    ``overwrite`` (which removes them first): :func:`~dynamix.train.preflight.prepare_out_dir`.
    Under torchrun (``WORLD_SIZE`` > 1) it starts the process group itself; callbacks run
    on rank 0 only (``dynamix train`` tears the group down at the end).
    """

    def __init__(
        self,
        params: Params,
        *,
        resume: bool = False,
        overwrite: bool = False,
        callbacks: Sequence[Callback] = (),
    ) -> None:
        self.params, self.cfg = params, params.train
        cfg, mcfg = self.cfg, params.model
        self.out_dir = Path(cfg.out_dir)
        self.device = distributed.init_from_env(resolve_device(cfg.device))
        self.rank, self.world_size = distributed.rank(), distributed.world_size()
        self.is_main = self.rank == 0
        if self.is_main and self.world_size > 1 and self.world_size != cfg.nproc_per_node:
            log.warning(
                "started by torchrun with %d processes while train.nproc_per_node "
                "is %s: the run uses %d (the key is how many dynamix starts itself)",
                self.world_size,
                cfg.nproc_per_node,
                self.world_size,
            )
        seed = distributed.rank_seed(cfg.seed, self.rank)  # = cfg.seed on rank 0
        self.amp = cfg.amp and self.device.type == "cuda"  # bf16: no loss scaler needed
        if cfg.eval_model not in ("momentum", "online"):
            raise DynamixError(f"train.eval_model must be momentum or online, not {cfg.eval_model!r}")
        if cfg.loss.single_negatives not in ("all", "video"):
            raise DynamixError(f"train.loss.single_negatives must be all or video, not {cfg.loss.single_negatives!r}")
        prepare_out_dir(self.out_dir, resume=resume, overwrite=overwrite, main=self.is_main)
        state = load_checkpoint(self.out_dir / "last.pt") if resume else None
        torch.manual_seed(seed)  # the one global seed; everything else has its own RNG

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
        self.selection = selection_splits(params)  # held-out source ids: what best.pt is chosen on
        self.img_size = (mcfg.img_height, mcfg.img_width)

        # model, momentum encoder, centroid bank, optimizer, losses
        self.model = ReIDModel(
            mcfg.arch,
            self.img_size,
            mcfg.pretrained_path,
            mcfg.drop_path_rate,
            depth=mcfg.depth,
            global_pool=mcfg.global_pool,
        ).to(self.device)
        distributed.broadcast_(self.model.state_dict().values())  # ranks start from rank 0's
        self.momentum = MomentumEncoder(self.model, mcfg.momentum, mcfg.momentum_warmup)
        # forward/backward through DDP; self.model stays the bare module (EMA, checkpoints)
        self.net: torch.nn.Module = self.model
        if self.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = DistributedDataParallel(self.model, device_ids=ids)
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
            distributed.broadcast_(self.id_loss.state_dict().values())  # same start everywhere
            trainable.append({"params": list(self.id_loss.parameters()), "weight_decay": 0.0})
        self.optimizer = torch.optim.AdamW(trainable, lr=cfg.lr)
        self.centroid_loss = CentroidLoss(lc.temperature, lc.num_negatives, lc.hard_fraction)
        self.triplet_loss = TripletLoss(lc.triplet_margin)
        self.consistency_loss = ConsistencyLoss(lc.consistency_kind, lc.temperature)
        self.loss_generator = torch.Generator().manual_seed(seed)
        # optimized parameters DDP does not average: the ID classifier's
        own = {id(p) for p in self.model.parameters()}
        self.extra_params = [p for g in self.optimizer.param_groups for p in g["params"] if id(p) not in own]

        self.step = 0
        self.best_map, self.best_step = float("-inf"), -1
        self.last_eval: dict[str, Any] = {}
        self.relabel_rounds = 0
        mine = None if state is None else self._rank_part(state)  # this rank's sampler/RNGs
        if state is not None:
            self._load(state, mine)
        elif cfg.bank_init == "pass":
            self.init_bank()  # else: a centroid starts at its id's first batch (bank.update)
        self.relabeler = self._build_relabeler()
        if self.relabeler is not None and state is not None and state.get("relabeler") is not None:
            self.relabeler.load_state_dict(state["relabeler"])
        self.sampler = self._build_sampler()
        self.videos: VideoGroups | None = None
        self._refresh_videos()
        if mine is not None:
            self.sampler.load_state_dict(mine["sampler"])
        self.dataset = ManifestImageDataset(
            self.paths, transform=build_transforms(self.img_size, train=True), two_views=True
        )
        resume_step = self.step if resume else None
        self.callbacks = [*([JsonlLogger(self.out_dir, resume_step)] if self.is_main else []), *callbacks]
        if resume and self.is_main:
            mark_unfinished(self.out_dir)  # metrics.json comes back when this run ends
        backend = torch.distributed.get_backend() if self.world_size > 1 else "none"
        log.info("training on %s: world size %d, backend %s", self.device, self.world_size, backend)

    # ---- setup -------------------------------------------------------------------------
    def _features(self, encoder: torch.nn.Module, paths: Sequence[str]) -> torch.Tensor:
        return extract_features(
            encoder,
            paths,
            img_size=self.img_size,
            batch_size=self.cfg.eval_batch_size,
            num_workers=self.cfg.num_workers,
            device=self.device,
            amp=self.amp,
        )

    def init_bank(self) -> None:
        """Centroids = mean momentum feature per id over every train image (one pass).

        Under DDP rank 0 makes the pass and broadcasts the bank (the others wait).
        """
        if self.is_main:
            t0 = time.perf_counter()
            feats = self._features(self.momentum, self.paths)  # (N, D)
            self.bank.init_from(feats, torch.from_numpy(self.labels))
            self.bank.finish_init()
            log.info(
                "centroid bank: %d ids from %d images in %.1fs",
                self.bank.num_ids,
                len(self.paths),
                time.perf_counter() - t0,
            )
        distributed.broadcast_([self.bank.centroids, self.bank.counts])

    def _build_relabeler(self) -> OnlineRelabeler | None:
        """The on-the-fly relabeler, or None (relabeling off, or no single-camera data)."""
        rc = self.cfg.relabel
        if not (rc.enabled and self.cfg.sampler.single_camera and self.single_images.any()):
            return None
        return OnlineRelabeler(
            self.initial_labels,
            self.single_images,
            self.table["train_camid"].to_numpy(),
            self.bank.num_ids,
            rc,
            use_gpu=self.device.type == "cuda",
        )

    def _refresh_videos(self) -> None:
        """Rebuild the id → video map from the sampler's index of the live labels."""
        if self.cfg.loss.single_negatives == "video" and self.single_images.any():
            self.videos = VideoGroups(self.sampler.index, self.bank.num_ids, self.device)

    def _build_sampler(self) -> MixedBatchSampler:
        sc = self.cfg.sampler
        p_m = sc.p_m + sc.p_s if not sc.single_camera and sc.keep_batch_size else sc.p_m
        return MixedBatchSampler(
            self.labels,
            self.table["train_camid"].to_numpy(),
            self.single_images,
            p_m=p_m,
            p_s=sc.p_s,
            k=sc.k,
            matching=sc.matching,
            single_camera=sc.single_camera,
            centroids=self.bank,
            seed=distributed.rank_seed(self.cfg.seed, self.rank),  # each rank its own batches
            ids_per_video=sc.ids_per_video,
        )

    def _loader(self) -> DataLoader:
        # A dedicated generator: creating the iterator must not draw from the global RNG.
        seed = distributed.rank_seed(self.cfg.seed, self.rank)
        generator = torch.Generator().manual_seed(seed * 1_000_003 + self.step)
        return DataLoader(
            self.dataset,
            batch_sampler=self.sampler,
            num_workers=self.cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=generator,
        )

    # ---- one step ----------------------------------------------------------------------
    def train_step(self, view1: torch.Tensor, view2: torch.Tensor, index: torch.Tensor) -> dict[str, float]:
        """One optimizer step: two views (B, 3, H, W) of the images ``index`` (B,)."""
        cfg, lc = self.cfg, self.cfg.loss
        lr = lr_at(self.step, base_lr=cfg.lr, warmup=cfg.warmup_iters, total=cfg.iters, min_ratio=cfg.min_lr_ratio)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        idx = index.numpy()
        labels = torch.from_numpy(self.labels[idx]).to(self.device)  # (B,) live labels
        groups = torch.from_numpy(self.single_images[idx].astype(np.int64)).to(self.device)
        view1, view2 = view1.to(self.device), view2.to(self.device)
        self.model.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            online = self.net(view2)  # (B, D); under DDP the backward averages gradients
            target = self.momentum(view1)  # (B, D), no grad
        if self._judging():
            labels = self._judge(idx, target)
        parts: dict[str, torch.Tensor] = {}
        mining = groups  # triplet groups: data type, or (with self.videos) single-camera video
        id_groups = extra_ids = None
        if self.videos is not None:
            live = self.labels[idx]
            mining = torch.from_numpy(self.videos.triplet_groups(live)).to(self.device)
            id_groups = self.videos.tensor
            extra_ids = torch.from_numpy(self.videos.ids_of_batch_videos(live)).to(self.device)
        if lc.centroid:
            weights = torch.where(groups == SINGLE, lc.w_centroid_single, lc.w_centroid_multi)
            parts["centroid"] = self.centroid_loss(
                online,
                labels,
                self.bank.centroids,
                weights=weights,
                valid_mask=self.bank.initialized,
                generator=self.loss_generator,
                id_groups=id_groups,
                extra_ids=extra_ids,
            )
        if self.id_loss is not None:
            classes = torch.from_numpy(self.class_of[np.maximum(self.labels[idx], 0)])
            classes[labels.cpu() < 0] = -1
            parts["id"] = lc.w_id * self.id_loss(online, classes.to(self.device))
        cross = (groups == SINGLE) if lc.triplet_cross_negatives else None
        parts["triplet"] = lc.w_triplet * self.triplet_loss(online, labels, mining, cross)
        kl_centroids = self.bank.centroids if lc.consistency_kind == "kl" else None
        parts["consistency"] = lc.w_consistency * self.consistency_loss(online, target, kl_centroids)
        loss = sum(parts.values())
        # (P + 3,) [loss, parts..., batch size, single images], averaged over the ranks: every
        # rank logs (and checks) the global values, so a non-finite loss stops them all
        report = torch.tensor(
            [*(float(v.detach()) for v in (loss, *parts.values())), len(idx), int(groups.sum())],
            dtype=torch.float32,
            device=self.device,
        )
        distributed.all_reduce_mean_([report])
        report = report.tolist()
        if not math.isfinite(report[0]):
            raise DynamixError(f"loss is {report[0]} at step {self.step}; lower train.lr")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.all_reduce_grads_(self.extra_params, self.device)  # DDP did the model's
        clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), clip)
        self.optimizer.step()
        # BN-neck running statistics saw only this rank's batch: keep rank 0's everywhere
        distributed.broadcast_([b for b in self.model.buffers() if b.is_floating_point()])
        self.momentum.update(self.model, step=self.step)
        self.bank.update(
            target.float(), labels, cfg.centroid_momentum, gather_fn=distributed.all_gather
        )  # every rank's batch, same update
        self.step += 1
        n = self.world_size
        metrics = {f"loss_{k}": v for k, v in zip(parts, report[1:-2], strict=True)}
        metrics.update(
            loss=report[0],
            lr=lr,
            grad_norm=float(grad_norm),
            batch=round(report[-2] * n),
            single_images=round(report[-1] * n),
        )
        return metrics

    # ---- relabeling and evaluation -----------------------------------------------------
    def _judging(self) -> bool:
        return self.relabeler is not None  # before relabel.warmup it only notes the ids seen

    @torch.no_grad()
    def _judge(self, idx: np.ndarray, target: torch.Tensor) -> torch.Tensor:
        """On-the-fly filter/reassign of this step's single-camera images, before the losses.

        The decisions come from the momentum features the step computed anyway, checked
        against the centroid bank (:meth:`OnlineRelabeler.judge`). Under DDP every rank
        judges the all-gathered batch of every rank, so all ranks make the same decisions
        and keep the same labels. Returns this rank's (B,) labels after the decisions.
        """
        index = torch.from_numpy(idx).to(self.device)
        feats, every_index = distributed.all_gather(target.float(), index)
        every_index = every_index.cpu().numpy()
        new = self.relabeler.judge(every_index, feats, self.labels[every_index], self.bank, self.step)
        self.labels[every_index] = new
        return torch.from_numpy(self.labels[idx]).to(self.device)

    def _window_due(self) -> bool:
        return self.relabeler is not None and self.step < self.cfg.iters and self.relabeler.window_due(self.step)

    def _closing_window_due(self) -> bool:
        """The last step closes the open window, so its decisions are reported too."""
        return self.relabeler is not None and self.step == self.cfg.iters and self.relabeler.pending()

    def end_window(self, merge: bool = True) -> dict[str, Any]:
        """Close a relabeling window: merge ids from the bank, report the window's actions.

        Rank 0 decides (:meth:`OnlineRelabeler.end_window`: the bank and labels only, no
        pass over any image); the other ranks take its labels, bank and relabeler state.
        ``merge=False``: report only (the closing window at the last step).
        """
        stats = None
        if self.is_main:
            t0 = time.perf_counter()
            result = self.relabeler.end_window(self.labels, self.bank, self.step, true_ids=self.true_ids, merge=merge)
            self.labels = np.asarray(result.labels, dtype=np.int64).copy()
            stats = {**result.stats, "seconds": time.perf_counter() - t0}
        if self.world_size > 1:
            stats = distributed.broadcast_object(stats)
            distributed.broadcast_([self.bank.centroids, self.bank.counts])
            labels = torch.from_numpy(self.labels.copy()).to(self.device)
            distributed.broadcast_([labels])
            state = distributed.broadcast_object(self.relabeler.state_dict() if self.is_main else None)
            if not self.is_main:
                self.labels = labels.cpu().numpy()
                self.relabeler.load_state_dict(state)
        try:
            self.sampler.update_labels(self.labels)
        except DynamixError as exc:  # e.g. merges and filtering left fewer than p_s single-camera ids
            raise DynamixError(
                f"relabel window at step {self.step}: {exc}; relabeling left too few ids to sample: lower "
                "train.relabel.max_merge_fraction or tau_filter, or set merge_scope: video, then rerun "
                "(--resume continues from last.pt)"
            ) from exc
        self._refresh_videos()
        self.relabel_rounds += 1
        self._emit("on_relabel", stats)
        return stats

    def evaluate(self) -> dict[str, Any]:
        """Metrics on every target (reported, gated later) and on the selection split.

        ``best.pt`` follows the selection split (held-out source identities,
        :mod:`dynamix.evaluation.holdout`), never the targets: in domain generalisation
        they are unseen, and picking a checkpoint by their mAP would leak the test set.
        Without a selection split ``best.pt`` is the final step. Under DDP rank 0
        evaluates and broadcasts, so every rank keeps the same ``best_map``/``last_eval``
        and takes part in saving ``best.pt``.
        """
        record = self._evaluate_targets() if self.is_main else None
        record = distributed.broadcast_object(record)
        results, selection = record["targets"], record["selection"]
        mean = mean_map(results)
        self.last_eval = {"step": self.step, **record, "mean_mAP": mean}
        flat = {f"{n}/{k}": v for n, r in {**results, **selection}.items() for k, v in r.items()}
        self._emit("on_eval", {**flat, "mean_mAP": mean})
        score = self._selection_score(selection)
        if self.is_main:
            per_target = ", ".join(f"{n} {r['mAP']:.4f}" for n, r in results.items())
            chosen = "" if score is None else f"; {self.selected_by} {score:.4f}"
            log.info("step %d: mean target mAP %.4f (%s)%s", self.step, mean, per_target, chosen)
        if score is None:
            score = float("inf") if self.step == self.cfg.iters else float("-inf")
        if score > self.best_map:
            self.best_map, self.best_step = score, self.step
            self.save("best.pt")
        return self.last_eval

    @property
    def selected_by(self) -> str:
        """What ``best.pt`` is chosen by: ``source-holdout mAP``, or ``final step``."""
        if not self.selection:
            return "final step"
        return f"{next(iter(self.selection))} {self.cfg.selection.metric}"

    def _selection_score(self, selection: dict[str, Any]) -> float | None:
        if not selection:
            return None
        return float(next(iter(selection.values()))[self.cfg.selection.metric])

    def _evaluate_targets(self) -> dict[str, Any]:
        """Metrics per target (:func:`~dynamix.evaluation.targets.evaluate_encoder` with the
        eval encoder's feature pass), plus the record that lets the pipeline reuse them
        (:mod:`dynamix.train.eval_record`: what they were computed on, and the top matches
        of ``tracking.ranked_list_queries`` queries for the ranked-list picture)."""
        encoder = self.momentum if self.cfg.eval_model == "momentum" else self.model

        def embed(paths: list[str]) -> torch.Tensor:
            return self._features(encoder, paths)

        report = evaluate_encoder(
            embed, self.targets, self.params.evaluation, ranked_queries=self.params.tracking.ranked_list_queries
        )
        on = evaluated_on(self.params, self.targets, self.cfg.eval_model)
        selection = {}
        if self.selection:
            selection = evaluate_encoder(embed, self.selection, self.params.evaluation, ranked_queries=0)["targets"]
        return {"targets": report["targets"], "selection": selection, "evaluated_on": on, "ranked": report["ranked"]}

    def _emit(self, event: str, payload: Any) -> None:
        """Call ``event`` on every callback, on rank 0 only (one log, one MLflow run)."""
        if self.is_main:
            for cb in self.callbacks:
                getattr(cb, event)(self.step, payload)

    # ---- the loop ----------------------------------------------------------------------
    def _due(self, every: int) -> bool:
        return (every > 0 and self.step % every == 0) or self.step == self.cfg.iters

    def fit(self) -> dict[str, Any]:
        """Train until ``train.iters``; returns (and writes) ``<out_dir>/metrics.json``."""
        if self.is_main:
            write_json_atomic(self.out_dir / "params.json", to_dict(self.params))
        batches = iter(self._loader()) if self.step < self.cfg.iters else iter(())
        tick = time.perf_counter()
        while self.step < self.cfg.iters:
            view1, view2, index = next(batches)
            metrics = self.train_step(view1, view2, index)
            now = time.perf_counter()
            metrics["img_s"] = metrics["batch"] / max(now - tick, 1e-9)
            tick = now
            self._emit("on_step", metrics)
            if self._window_due():
                self.end_window()
            elif self._closing_window_due():
                self.end_window(merge=False)
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
            **{k: v for k, v in self.last_eval.items() if k not in ("evaluated_on", "ranked")},
            "selected_by": self.selected_by,
            "best_selection_score": self.best_map if math.isfinite(self.best_map) else None,
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
        if self.is_main:
            write_json_atomic(self.out_dir / "metrics.json", summary)
        return summary  # the same on every rank: its inputs are kept identical

    def _rank_state(self) -> dict[str, Any]:
        """The part of the state that differs between DDP ranks: sampler and RNGs."""
        rng = {"torch": torch.get_rng_state(), "loss": self.loss_generator.get_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        return {"sampler": self.sampler.state_dict(consumed=self.step), "rng": rng}

    def _rank_part(self, state: dict[str, Any]) -> dict[str, Any] | None:
        """This rank's sampler/RNG state in a checkpoint; None = keep the fresh ones."""
        ranks = state.get("ranks") or [{"sampler": state["sampler"], "rng": state["rng"]}]
        if len(ranks) != self.world_size:
            log.warning(
                "checkpoint written by %d process(es), resumed by %d: ranks from %d "
                "on start fresh sampler/RNG streams (the batches differ from an "
                "uninterrupted run)",
                len(ranks),
                self.world_size,
                len(ranks),
            )
        return ranks[self.rank] if self.rank < len(ranks) else None

    def state_dict(self, ranks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Everything a resume needs; only tensors, numbers, strings, lists and dicts.

        ``ranks``: every DDP rank's :meth:`_rank_state`, stored under ``"ranks"``; the
        top-level ``sampler``/``rng`` are this rank's, as in a single-process run.
        """
        own = self._rank_state()
        extra = {} if ranks is None else {"ranks": ranks}
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
            "relabeler": None if self.relabeler is None else self.relabeler.state_dict(),
            "sampler": own["sampler"],
            "optimizer": self.optimizer.state_dict(),
            "id_classifier": None if self.id_loss is None else self.id_loss.state_dict(),
            "rng": own["rng"],
            "params": to_dict(self.params),
            **extra,
        }

    def _load(self, state: dict[str, Any], mine: dict[str, Any] | None) -> None:
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
        if mine is not None:
            rng = mine["rng"]
            torch.set_rng_state(rng["torch"])
            self.loss_generator.set_state(rng["loss"])
            if "cuda" in rng and self.device.type == "cuda":
                torch.cuda.set_rng_state(rng["cuda"], self.device)
        log.info("resumed from %s at step %d", self.out_dir / "last.pt", self.step)

    def save(self, name: str) -> Path:
        """Write ``<out_dir>/<name>`` (rank 0); under DDP every rank must call it."""
        ranks = distributed.all_gather_object(self._rank_state()) if self.world_size > 1 else None
        path = self.out_dir / name
        if self.is_main:
            save_checkpoint(self.state_dict(ranks), path)
            self._emit("on_checkpoint", path)
        distributed.barrier()  # nobody runs ahead of (or reads) a half-written checkpoint
        return path


def train(
    params: Params, *, resume: bool = False, overwrite: bool = False, callbacks: Sequence[Callback] = ()
) -> dict[str, Any]:
    """Run (or resume) a training run; returns the final metrics."""
    return Trainer(params, resume=resume, overwrite=overwrite, callbacks=callbacks).fit()
