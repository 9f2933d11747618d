"""L2 toward the pre-trained weights (L2-SP; Li, Grandvalet and Davoine, 2018), one of the baselines of
Lin et al., 2025:

    L = L_SFT + λ · Σ_params ‖θ − θ₀‖²

L_SFT is the token mean over the optimizer step's response tokens; the penalty counts once per step. Under
FSDP θ₀ is sharded like the model (each process holds its shard of the copy).

θ₀ is one frozen copy of the trainable parameters, taken once before training on the model's own device; the
penalty is 0 at step 0. λ is a config value (`lam`, default 0.01): the paper's λ could not be read (2026-12;
only the abstract of arXiv 2509.20758 is reachable from here, which names "L2 regularization" without a value).
"""

from __future__ import annotations

from forgetbench.methods.base import Method
from forgetbench.methods.registry import register


@register
class L2(Method):
    name = "l2"
    hparams_schema = {"lam": {"type": "number", "minimum": 0, "default": 0.01, "description": "λ"}}
    weight_copies = 2  # θ₀, and θ − θ₀ of every tensor at once (the penalty's foreach kernels)

    def prepare_model(self, model, *, seed: int):
        # Live parameters and their frozen copies, in the same order: no lookup by name, which wrappers (DDP,
        # peft) would rename.
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.reference = [p.detach().clone() for p in self.params]
        self.attached = False  # whether on_step_start has followed the Trainer's wrapping
        return model

    def on_step_start(self, model) -> None:
        """FSDP replaces each parameter by a sharded one (a DTensor) when training starts: θ₀ is sharded the same
        way, each process keeping its shard of the copy taken before (so a resumed run keeps the true θ₀).
        Called before the step's forward passes, while every parameter is sharded: during a forward FSDP puts
        gathered full tensors in some modules' places."""
        # The parameters change once, when the Trainer wraps the model before its first step: one walk over the
        # modules then, not every step.
        if self.attached:
            return
        self.attached = True
        from torch.distributed.tensor import DTensor, distribute_tensor

        live = [p for p in model.parameters() if p.requires_grad]
        # fully_shard may keep the Parameter objects and turn them into DTensors in place, or replace them
        if (len(live) == len(self.params) and all(a is b for a, b in zip(live, self.params))
                and all(isinstance(p, DTensor) == isinstance(r, DTensor) for p, r in zip(live, self.reference))):
            return
        if len(live) != len(self.reference):
            raise RuntimeError(f"l2: the model has {len(live)} trainable tensors, θ₀ {len(self.reference)}")

        # Process 0's θ₀ is scattered (src_data_rank 0); with rank-0 loading the other processes hold θ₀ on the
        # meta device, so each lends an empty tensor of one parameter's size at a time.
        self.reference = [
            distribute_tensor(_materialised(ref, p.device_mesh.device_type), p.device_mesh, p.placements,
                              src_data_rank=0)
            if isinstance(p, DTensor) and not isinstance(ref, DTensor) else ref
            for p, ref in zip(live, self.reference)
        ]
        self.params = live

    def penalty(self) -> torch.Tensor:
        import torch

        # Multi-tensor (foreach) kernels: a few launches per step instead of three per parameter tensor, which
        # made l2 0.69x of sft's throughput on a GPU. The norm's gradient at θ = θ₀ is 0, not NaN.
        # Accumulated in float64: on a CPU the float32 kernel sums sequentially, 0.3 % off over 3 M equal terms
        # (a tiny model's embedding after one Adam step), and a different split over FSDP shards is differently off.
        norms = torch._foreach_norm(torch._foreach_sub(self.params, self.reference), 2, dtype=torch.float64)
        penalty = torch.stack(norms).pow(2).sum().float()
        # Sharded (FSDP): the sum over every process's shard, the same value on each.
        return penalty.full_tensor() if hasattr(penalty, "full_tensor") else penalty

    # Denominator: the step's response tokens for the cross-entropy; the penalty counts once per step.
    def step_loss(self, model):
        self.last_penalty = self.penalty()
        return self.hparams["lam"] * self.last_penalty


def _materialised(tensor, device_type: str):
    """`tensor` on `device_type`; a meta tensor becomes an uninitialised one of its shape (it only receives)."""
    import torch

    if tensor.device.type == "meta":
        return torch.empty(tensor.shape, dtype=tensor.dtype, device=device_type)
    return tensor.to(device_type)
