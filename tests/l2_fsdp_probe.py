"""L2 toward θ₀ on a model sharded with FSDP2 (torch's fully_shard over gloo), against the same unsharded: the
penalty and a gradient over two SGD steps. Run by tests/test_sharding.py:

    python -m torch.distributed.run --standalone --nproc-per-node 2 tests/l2_fsdp_probe.py MODEL OUT.json
    python tests/l2_fsdp_probe.py MODEL OUT.json          # one process, unsharded

accelerate shards only over GPUs, so the workflow's Trainer cannot run FSDP on a CPU (tests/test_fsdp_cpu.py runs it
with that gate lifted in its own processes); this probe runs the method's side of it (θ₀ sharded like the model)
with torch's own FSDP2 alone.
"""
import json
import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.fsdp import fully_shard
from transformers import AutoModelForCausalLM
from forgetbench.methods import get_method

def main():
    model_dir, out = sys.argv[1], sys.argv[2]
    sharded = "RANK" in os.environ
    if sharded:
        dist.init_process_group("gloo")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    method = get_method("l2")(lam=1.0)
    method.prepare_model(model, seed=0)
    if sharded:
        for layer in model.model.layers:
            fully_shard(layer)
        fully_shard(model)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    ids = torch.arange(2 * 16).view(2, 16) % 500
    penalties, grads = [], []
    for _ in range(2):
        method.on_step_start(model)
        out_ = model(input_ids=ids, labels=ids)
        loss = out_.loss + method.step_loss(model)
        loss.backward()
        g = model.model.layers[0].self_attn.q_proj.weight.grad
        grads.append(float((g.full_tensor() if hasattr(g, "full_tensor") else g).norm()))
        opt.step(); opt.zero_grad()
        penalties.append(float(method.last_penalty))
    if not sharded or dist.get_rank() == 0:
        json.dump({"penalties": penalties, "grads": grads, "sharded": sharded,
                   "reference_type": type(method.reference[0]).__name__}, open(out, "w"))
    if sharded:
        dist.destroy_process_group()

if __name__ == "__main__":
    main()
