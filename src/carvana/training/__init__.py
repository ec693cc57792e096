"""Training one model on one fold: data, the Lightning task, and the job that ties them together."""
