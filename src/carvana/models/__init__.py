"""The ensemble's architectures: the original UNet, UNet1024 and UNet11 (TernausNet)."""
