"""Reward models: the value head (head.py), scoring with a trained reward run (model.py:
RewardModel.open(run).score(prompts, answers)), and scoring files (score_file.py). Training is a
mode like the others: localtune/train/reward.py."""
