"""The tiny training overrides shared by the trainer and DDP tests.

64×32 images (4×2 patches), batches of 16 per process, 6 steps: relabel rounds at 2 and 4,
evaluation and checkpoints at 3 and 6.
"""

TINY = [
    "model.img_height=64", "model.img_width=32", "model.drop_path_rate=0.0",
    "train.iters=6", "train.num_workers=0", "train.eval_every=3", "train.checkpoint_every=3",
    "train.warmup_iters=2", "train.eval_batch_size=64",
    "train.sampler.p_m=2", "train.sampler.p_s=2", "train.sampler.k=4",
    "train.relabel.warmup=2", "train.relabel.every=2", "train.relabel.max_merge_fraction=1.0",
]  # fmt: skip
