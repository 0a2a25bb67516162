"""The DynaMix trainer: the loop, its schedule, checkpoints, callbacks and CLI.

``from dynamix.train.trainer import Trainer, train`` (imported lazily so that
``dynamix --help`` does not import torch).
"""
