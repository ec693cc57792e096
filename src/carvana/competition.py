"""The Carvana Image Masking Challenge (Kaggle, 2017): its name and the counts and size of its
data, defined here once. The config schema repeats the name as ``kaggle.competition``'s default
(a test checks that they agree)."""

from __future__ import annotations

COMPETITION = "carvana-image-masking-challenge"
COMPETITION_SIZE = (1280, 1918)  # (height, width) of every competition image
COMPETITION_TRAIN_IMAGES = 5088  # 318 cars x 16 views
COMPETITION_TEST_IMAGES = 100064
COMPETITION_SIZE_TEXT = f"{COMPETITION_SIZE[1]}x{COMPETITION_SIZE[0]}"  # width x height, as Kaggle writes it
