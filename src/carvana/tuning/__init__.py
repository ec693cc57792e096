"""Out-of-fold threshold tuning."""
