"""``flows.train_worker`` whose first attempt dies at step 3 on rank 0, like a lost node.

Started by torchrun in place of the real worker (``pipeline.TRAIN_WORKER``); a retry
(``--resume``) runs the real worker unchanged.
"""

import sys

from dynamix.train.callbacks import Callback
from flows import train_worker


class CrashAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, step, metrics):
        if step == self.step:
            raise RuntimeError(f"simulated crash of rank 0 at step {step}")


if __name__ == "__main__":
    argv = sys.argv[1:]
    sys.exit(train_worker.main(argv, [] if "--resume" in argv else [CrashAt(3)]))
