"""Training: one loop (loop.py) shared by SFT and DPO, their losses, checkpoints and sessions."""
