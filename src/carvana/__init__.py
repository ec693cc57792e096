"""The Carvana Image Masking Challenge pipeline: the library behind the Snakemake workflow."""

import os

# albumentations asks PyPI for a newer version at import unless this is set; the pipeline reaches
# no network on the offline default.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

__version__ = "0.1.0"
