"""``make scale``: each stage's cost at the competition's counts, beside what its Slurm job gets.

On generated 1918x1280 images, masks and OOF maps, it runs each CPU-side stage's own command
(``carvana <stage>``, as its rule does) on a sample and on the sample doubled, each in a process
of its own: the difference is the cost per item (an image, a file, a row) on one core, the rest
the fixed cost, and the process's peak resident memory is the stage's. The writer threads of the
GPU stages (OOF PNGs, pseudo-label PNGs, prediction's resize and RLE) are timed in this process.
The GPU stages' network time comes from ``results/gpu_check.json`` where ``make gpu-check`` wrote
one, else from the networks' FLOPs at ``--assumed-tflops`` (marked "assumed"). Disk is worked out
from the sizes of the files the sample wrote.

Prints a table (one job of each rule at the competition's counts on 2, 8, 16 and 32 cores, its
peak memory, its rule's Slurm runtime, memory and CPUs), writes ``results/scale.json``, and exits
1 when a job's projection on the CPUs its Slurm job gets exceeds that job's runtime or memory.

Run: ``make scale`` (``python -m benchmarks.scale`` in the repository root). ``sample`` makes
what the stages read, ``commands`` runs and measures the CPU-side stages' commands, ``costs``
works out the GPU stages' writers and networks and the disk.
"""
