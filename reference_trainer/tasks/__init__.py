"""What the policy is scored on: reward functions (``rewards``), the offline tasks' proxy and gold
scorers (``offline``, ``reward_model``), and a run's pair of them (``scorers``)."""
