"""The Trainer's FSDP2 path (forgetbench.training) on 2 CPU processes under torchrun (gloo), standing in for GPUs.

accelerate 1.15 enables FSDP only for GPU-like distributed types, so these tests lift that gate in their own
processes (tests/accelerate_fsdp_on_cpu.py, loaded by a sitecustomize.py on PYTHONPATH); the workflow itself still
refuses `fsdp` without GPUs. Each two-process run is made once and shared by the assertions on it.

    .venv/bin/python -m pytest -q tests/test_fsdp_cpu.py -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from accelerate_fsdp_on_cpu import sitecustomize_source
from conftest import REPO
from test_sharding import CRASH_AFTER_STEP_2, LOSS_RTOL, WEIGHT_ATOL, data, run_processes  # noqa: F401 (fixture)

FSDP_METHODS = ["sft", "l2", "talr", "hft"]
# torch's clip_grad_norm_ sums squares in float32 sequentially on a CPU: over L2's penalty gradient (3.2 M entries
# of about ±2e-3 after one Adam step) one process's norm and the sum of two shards' norms differ by 3.7e-4
# (4.62834 vs 4.63006), the same drift the penalty itself had before it was summed in float64 (0.3 % over 3 M
# equal terms, measured). Every other gradient norm here agrees to LOSS_RTOL.
L2_GRAD_NORM_RTOL = 1e-3


def hook_env(tmp_path_factory, extra: str = "") -> dict[str, str]:
    """PYTHONPATH for the launched processes: a sitecustomize.py that lifts accelerate's gate (plus `extra`)."""
    hook = tmp_path_factory.mktemp("hook")
    (hook / "sitecustomize.py").write_text(sitecustomize_source(extra))
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(hook), str(REPO / "tests"), os.environ.get("PYTHONPATH")]))}


def probe_extra() -> str:
    return "import fsdp_probe\nfsdp_probe.install()\n"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_model_dir, data):  # noqa: F811 (the fixture imported above)
    """method -> (one process's run, two FSDP processes' run, the probe of each process): made once."""
    probes = tmp_path_factory.mktemp("probes")
    out = {}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in hook_env(tmp_path_factory, probe_extra()).items():
            patch.setenv(name, value)
        for method in [*FSDP_METHODS, "lora"]:
            (probes / method).mkdir()
            patch.setenv("FSDP_PROBE_DIR", str(probes / method))
            root = tmp_path_factory.mktemp(method)
            one = run_processes(method, tiny_model_dir, data, root / "one", 1, batch_size=4)
            # LoRA keeps FSDP off (auto is DDP for it): the lifted gate must not turn it on
            two = run_processes(method, tiny_model_dir, data, root / "two", 2, batch_size=2,
                                strategy="auto" if method == "lora" else "fsdp")
            ranks = [json.loads((probes / method / f"rank{r}.json").read_text()) for r in (0, 1)]
            out[method] = (one, two, ranks)
    return out


def max_difference(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("method", [*FSDP_METHODS, "lora"])
def test_fsdp_on_two_cpu_processes_equals_one_process(method, runs):
    (one_log, one, one_run), (two_log, two, two_run), _ = runs[method]
    assert [r["loss"] for r in two_log] == pytest.approx([r["loss"] for r in one_log], rel=LOSS_RTOL)
    grad_rtol = L2_GRAD_NORM_RTOL if method == "l2" else LOSS_RTOL
    assert [r["grad_norm"] for r in two_log] == pytest.approx([r["grad_norm"] for r in one_log], rel=grad_rtol)
    assert [r["tokens"] for r in two_log] == [r["tokens"] for r in one_log]
    # the weights gathered from the shards and saved: the same tensors (no tied LM head written twice)
    assert sorted(two) == sorted(one)
    assert max_difference(two, one) <= WEIGHT_ATOL
    expected = ("ddp", "MULTI_CPU") if method == "lora" else ("fsdp", "FSDP")
    assert (two_run["strategy"], two_run["distributed_type"], two_run["effective_batch"]) == (*expected, 4)


@pytest.mark.parametrize("method", FSDP_METHODS)
def test_fsdp_parameters_are_sharded_dtensors_half_on_each_process(method, runs):
    *_, ranks = runs[method]
    for probe in ranks:
        params = probe["parameters"]
        assert all(p["dtensor"] and p["shard_dims"] == [0] for p in params), params[:2]
        local, full = sum(p["local_bytes"] for p in params), sum(p["full_bytes"] for p in params)
        assert local / full == pytest.approx(0.5, abs=0.01), (local, full)
    if method == "hft":  # the frozen halves stay frozen inside the wrapped layers
        frozen = [p["name"] for p in ranks[0]["parameters"] if not p["requires_grad"]]
        assert "model.embed_tokens.weight" in frozen and any(".mlp." in n for n in frozen)


def test_lora_with_fsdp_off_stays_replicated(runs):
    *_, ranks = runs["lora"]
    assert not any(p["dtensor"] for probe in ranks for p in probe["parameters"])


def launch_fsdp(tiny_model_dir, data, out, env: dict, method: str = "l2"):  # noqa: F811
    """4 steps of `method` on 2 FSDP processes with a resume checkpoint after every step, in a child process."""
    from forgetbench.methods import get_method
    from test_sharding import METHODS

    cell = {"model": "tiny", "method": method, "hparams": get_method(method).validate_hparams(METHODS[method], "t"),
            "lr": 1e-3, "seed": 0, "domain": {"name": "toy", "format": "cot"}, "chat_template": "auto",
            "training": {"max_steps": 4, "epochs": 1, "batch_size": 2, "grad_accum": 1, "max_seq_len": 256,
                         "lr_scheduler": "cosine", "warmup_ratio": 0.0, "weight_decay": 0.0, "max_grad_norm": 1.0,
                         "logging_steps": 1, "precision": "fp32", "resume_every": 1, "strategy": "fsdp"}}
    spec = dict(base_model=str(tiny_model_dir), train_jsonl=str(data / "train.jsonl"), out_model=str(out / "model"),
                out_log=str(out / "log.jsonl"), out_run=str(out / "run.json"), cell=cell)
    code = "import json, sys; from forgetbench.training.launch import run; run(json.loads(sys.argv[1]), 2, 2)"
    return subprocess.run([sys.executable, "-c", code, json.dumps(spec)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)


def test_a_killed_fsdp_run_resumes_from_its_fsdp_checkpoint_and_ends_as_an_uninterrupted_one(
        tiny_model_dir, data, tmp_path, tmp_path_factory):  # noqa: F811
    """L2: the resumed run must also keep the true θ₀ (taken from the base model, not the checkpoint)."""
    plain, crashing = hook_env(tmp_path_factory), hook_env(tmp_path_factory, CRASH_AFTER_STEP_2)
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    done = launch_fsdp(tiny_model_dir, data, straight, plain)
    assert done.returncode == 0, done.stderr[-3000:]
    done = launch_fsdp(tiny_model_dir, data, killed, crashing)
    assert done.returncode != 0 and not (killed / "run.json").exists()
    checkpoint = killed / "resume" / "checkpoint-2"
    assert [p.name for p in (killed / "resume").glob("checkpoint-*")] == ["checkpoint-2"]
    # written by accelerate's FSDP path (the full state dict of the sharded model and of its optimizer)
    assert {"pytorch_model_fsdp.bin", "optimizer.bin"} <= {p.name for p in checkpoint.iterdir()}
    done = launch_fsdp(tiny_model_dir, data, killed, plain)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming from" in done.stdout + done.stderr

    log, reference = ([json.loads(line) for line in (d / "log.jsonl").read_text().splitlines()] for d in (killed, straight))
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert [r["loss"] for r in log] == pytest.approx([r["loss"] for r in reference], rel=LOSS_RTOL)
    assert [r["grad_norm"] for r in log] == pytest.approx([r["grad_norm"] for r in reference], rel=LOSS_RTOL)
    a, b = (load_file(d / "model" / "model.safetensors") for d in (killed, straight))
    assert max_difference(a, b) <= WEIGHT_ATOL
    assert json.loads((killed / "run.json").read_text())["strategy"] == "fsdp"


# The per-process resident memory of a process that has not loaded the model (torch, transformers, the data) is
# measured as process 1's; process 0 must hold one copy more, to this share of the copy.
COPY_RTOL = 0.25


def test_rank_zero_loading_holds_one_host_copy_of_the_model(tmp_path_factory, data):  # noqa: F811
    """A 69 M-parameter model (277 MB in float32; a copy must stand out of the ~0.5 GB a process holds anyway): under
    FSDP process 0 loads it, process 1 holds no copy, and the shards are right (the run trains one step)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgetbench.config.resources import host_load_bytes
    from forgetbench.models.tiny import build_tiny_llama

    wide = build_tiny_llama(tmp_path_factory.mktemp("wide") / "wide-llama", hidden_size=1024)
    # saved in bfloat16 like the hub's checkpoints, loaded in float32 as training does: the loaded copy is the
    # process's own memory (a float32 file loaded as float32 would stay a shared memory map of the file)
    model_dir = tmp_path_factory.mktemp("wide-bf16") / "model"
    AutoModelForCausalLM.from_pretrained(wide, dtype=torch.bfloat16).save_pretrained(model_dir)
    AutoTokenizer.from_pretrained(wide).save_pretrained(model_dir)
    probes = tmp_path_factory.mktemp("rss")
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {**hook_env(tmp_path_factory, probe_extra()), "FSDP_PROBE_DIR": str(probes)}.items():
            patch.setenv(name, value)
        log, weights, run = run_processes("sft", model_dir, data, tmp_path_factory.mktemp("out"), 2, batch_size=2,
                                          strategy="fsdp", max_steps=1)
    ranks = [json.loads((probes / f"rank{r}.json").read_text()) for r in (0, 1)]
    params = sum(p["full_bytes"] for p in ranks[0]["parameters"]) // 4
    copy = 4 * params
    loaded = [r["loaded"]["anon"] for r in ranks]
    print(f"copy {copy / 2**20:.0f} MiB; per process at load (anonymous, all) "
          f"{[(r['loaded']['anon'] >> 20, r['loaded']['rss'] >> 20) for r in ranks]} MiB, after wrapping "
          f"{[(r['wrapped']['anon'] >> 20, r['wrapped']['rss'] >> 20) for r in ranks]} MiB, peak "
          f"{[r['peak_wrapped'] >> 20 for r in ranks]} MiB")
    # process 0 holds the copy, process 1 none: summed, one copy plus two processes' overhead
    assert loaded[0] - loaded[1] == pytest.approx(copy, rel=COPY_RTOL), (loaded, copy)
    assert sum(loaded) == pytest.approx(2 * loaded[1] + copy, rel=COPY_RTOL * copy / sum(loaded))
    assert sum(loaded) < host_load_bytes(params, "fp32", 2, "fsdp") < host_load_bytes(params, "fp32", 2, "ddp")
    # process 1's shards came from process 0: the step trained from the real weights, and every process holds half
    assert run["strategy"] == "fsdp" and 0 < log[0]["loss"] < 20 and weights["model.norm.weight"].numel() == 1024
    assert sum(p["local_bytes"] for p in ranks[1]["parameters"]) == pytest.approx(copy / 2, rel=0.01)
