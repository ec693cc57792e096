"""TTA ensemble prediction, one shard of the test set at a time."""
