"""Integrations of safecontrol controllers into third-party trainers.

Each integration is a submodule imported explicitly, so that importing ``safecontrol`` or this
package never imports the trainer library:

- ``safecontrol.integrations.trl``: ``SafeBetaCallback`` drives the KL coefficient β of TRL's
  ``GRPOTrainer`` or ``RLOOTrainer`` (trl 1.x) from any ``safecontrol.contract.Controller``,
  given as an object or by its ``safecontrol.registry`` name (install with
  ``pip install "safecontrol[trl]"``).
- ``safecontrol.integrations.kl_ctrl``: ``KLCtrlAdapter``, any controller in the ``.value`` /
  ``.update(current_kl, n_steps)`` shape of verl, OpenRLHF, SkyRL and trlx (no framework
  imported).
- ``safecontrol.integrations.verl``: ``SafeKLMixin`` for verl's ``RayPPOTrainer`` and
  ``adapter_like`` (``pip install "safecontrol[verl]"`` and ``pip install --no-deps verl``).
- ``safecontrol.integrations.verl_plugin``: the opt-in ``verl.plugins`` entry point; inert
  unless ``SAFECONTROL_VERL_CONTROLLER`` names a controller for verl's in-reward KL.
"""
