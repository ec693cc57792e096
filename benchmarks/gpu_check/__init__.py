"""``make gpu-check``: what the full competition will cost on this device, and how close to its
peak the pipeline runs.

At the competition config (competition.yaml: full width, full resolution, its batch sizes) it
measures, on generated images of the competition's size and networks with random weights (speed
does not depend on the weights):

- training, per architecture: images/s of the whole step (the DataLoader with the model's workers
  and pinned memory, the copy to the device, forward, backward, the optimizer) after a warm-up, in
  the precision the job would choose and channels-last, eager and under ``torch.compile``; the
  same step on a batch already on the device (what the network alone allows); validation images/s;
  peak memory at the configured batch and the largest batch that fits this device;
- prediction: images/s of the whole shard path (decode, flip TTA, every architecture, RLE, write)
  beside the networks' forward alone, with each ``--workers`` count, eager and compiled;
- FLOPs per image counted by ``torch.utils.flop_counter`` (on the meta device: nothing computed),
  the achieved TFLOP/s and their share of the device's dense bf16 peak (a table of known devices;
  elsewhere, or on a CPU, the dense matrix product measured here, in the networks' precision);
- the projected wall clock of the whole competition (every model on every fold for its epochs
  with validation and OOF maps, then the 100,064 test images through every network) on one such
  device and on N of them (``--resources gpu=N``), from each stage's faster measured setting.

Without a GPU it runs on the CPU; ``--image-scale`` and ``--width`` shrink it to something a CPU
runs in a minute, which keeps it working under test. Prints a table and writes JSON (``--json``).

Run: ``make gpu-check`` (``python -m benchmarks.gpu_check`` in the repository root). The
measurements are in ``device``, ``training`` and ``prediction``, the models as measured in
``models``; the projection's arithmetic in ``projection``, the table in ``table``.
"""
