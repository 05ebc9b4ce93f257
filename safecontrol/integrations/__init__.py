"""Integrations of safecontrol controllers into third-party trainers.

Each integration is a submodule imported explicitly, so that importing ``safecontrol`` or this
package never imports the trainer library:

- ``safecontrol.integrations.trl``: ``SafeBetaCallback`` drives TRL ``GRPOTrainer``'s KL
  coefficient β from a controller (install with ``pip install "safecontrol[trl]"``).
"""
