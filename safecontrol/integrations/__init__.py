"""Integrations of safecontrol controllers into third-party trainers.

Each integration is a submodule imported explicitly, so that importing ``safecontrol`` or this
package never imports the trainer library:

- ``safecontrol.integrations.trl``: ``SafeBetaCallback`` drives TRL ``GRPOTrainer``'s KL
  coefficient β from any ``safecontrol.contract.Controller``, given as an object or by its
  ``safecontrol.registry`` name (install with ``pip install "safecontrol[trl]"``).
"""
