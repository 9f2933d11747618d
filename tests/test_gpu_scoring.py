"""score_base and the domain test loss on the job's GPUs (forgetbench.analysis.base_scores): on this CPU machine,
that the device reaches the model and the batches, that an explicit "cpu" and accelerate's placement
(device_map="auto", what a job with several GPUs uses) give the CPU's numbers, and that the rule scripts turn the
job's GPU count into the device (a GPU job that sees none fails instead of scoring on the CPU)."""

from __future__ import annotations

import json
import runpy
from types import SimpleNamespace

import pytest
import torch

from forgetbench.analysis import base_scores
from forgetbench.analysis.base_scores import domain_loss, score_with_base, scoring_device

from conftest import REPO


class Files(SimpleNamespace):
    """Snakemake's input/output/log lists: named entries, and by position."""

    def __getitem__(self, index):
        return list(vars(self).values())[index]

    def keys(self):
        return vars(self).keys()


@pytest.fixture(scope="module")
def train_jsonl(tmp_path_factory):
    from forgetbench.atomic import write_jsonl
    from forgetbench.data.records import make_record

    path = tmp_path_factory.mktemp("scoring") / "train.jsonl"
    write_jsonl(path, [make_record(f"r{i}", f"What is {i} times {i}?", str(i * i), answer_type="integer")
                       for i in range(6)])
    return path


def score(model_dir, train_jsonl, out, **kwargs):
    stats = score_with_base(str(model_dir), str(train_jsonl), "label", 128, "auto", str(out / "losses.jsonl"),
                            str(out / "stats.json"), batch_size=4, **kwargs)
    return [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()], stats


def test_scoring_device_follows_the_jobs_gpus():
    assert [scoring_device(g) for g in (0, 1, 2, 4)] == ["cpu", "cuda", "auto", "auto"]


def test_the_device_reaches_the_model_and_every_batch(tiny_model_dir, train_jsonl, tmp_path, monkeypatch):
    seen = []
    load = base_scores.load_weights

    def spy(model_dir, adapter_dir=None, device="cpu"):
        model = load(model_dir, adapter_dir, device)
        seen.append(("model", device, {p.device.type for p in model.parameters()}))
        model.register_forward_pre_hook(lambda m, args, kw: seen.append(("batch", kw["input_ids"].device.type)),
                                        with_kwargs=True)
        return model

    monkeypatch.setattr(base_scores, "load_weights", spy)
    score(tiny_model_dir, train_jsonl, tmp_path, device="cpu")
    assert seen == [("model", "cpu", {"cpu"}), ("batch", "cpu"), ("batch", "cpu")]  # 6 records, batches of 4


def test_explicit_cpu_and_accelerates_placement_give_the_default_numbers(tiny_model_dir, train_jsonl, tmp_path):
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir(), (tmp_path / "c").mkdir()
    plain, plain_stats = score(tiny_model_dir, train_jsonl, tmp_path / "a")
    cpu, cpu_stats = score(tiny_model_dir, train_jsonl, tmp_path / "b", device="cpu")
    # device_map="auto" without GPUs places every layer on the CPU: the code path of a job with several GPUs
    placed, placed_stats = score(tiny_model_dir, train_jsonl, tmp_path / "c", device="auto")
    assert plain == cpu and plain_stats == cpu_stats
    assert [r["tokens"] for r in placed] == [r["tokens"] for r in plain]
    assert [r["mean_loss"] for r in placed] == pytest.approx([r["mean_loss"] for r in plain], rel=1e-5)
    assert placed_stats["mean_prob"] == pytest.approx(plain_stats["mean_prob"], rel=1e-5)
    loss = domain_loss(str(tiny_model_dir), str(train_jsonl), "label", 128, "auto", batch_size=4, device="cpu")
    tokens = sum(r["tokens"] for r in plain)
    assert loss == pytest.approx(sum(r["mean_loss"] * r["tokens"] for r in plain) / tokens, rel=1e-6)


def fake_score_base_job(tiny_model_dir, train_jsonl, out, gpus: int):
    return SimpleNamespace(
        input=Files(model=str(tiny_model_dir), train=str(train_jsonl)),
        output=Files(losses=str(out / "losses.jsonl"), stats=str(out / "stats.json")),
        log=Files(log=str(out / "score_base.log")), threads=1, resources=Files(gpu=gpus),
        params=Files(fmt="label", max_len=128, max_truncated_share=0.01, chat_template="auto", batch_size=4))


@pytest.mark.parametrize("gpus, device", [(0, "cpu"), (1, "cuda"), (2, "auto")])
def test_the_score_base_script_scores_on_its_jobs_gpu_resource(tiny_model_dir, train_jsonl, tmp_path, monkeypatch,
                                                               gpus, device):
    import forgetbench.devices

    asked = []
    monkeypatch.setattr(forgetbench.devices, "check_visible_gpus", lambda n, job: asked.append(n))
    monkeypatch.setattr(base_scores, "score_with_base", lambda *a, **kw: asked.append(kw["device"]))
    job = fake_score_base_job(tiny_model_dir, train_jsonl, tmp_path, gpus)
    runpy.run_path(str(REPO / "workflow/scripts/score_base.py"), init_globals={"snakemake": job})
    assert asked == [gpus, device]


def test_a_score_base_job_that_asked_for_a_gpu_and_sees_none_fails(tiny_model_dir, train_jsonl, tmp_path, monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    job = fake_score_base_job(tiny_model_dir, train_jsonl, tmp_path, 1)
    with pytest.raises(RuntimeError) as failed:
        runpy.run_path(str(REPO / "workflow/scripts/score_base.py"), init_globals={"snakemake": job})
    assert str(failed.value) == (f"rule score_base ({tmp_path}/stats.json): asked for 1 GPU but sees 0 "
                                 f"(CUDA_VISIBLE_DEVICES=); not falling back to the CPU")
    assert not (tmp_path / "losses.jsonl").exists()


def test_the_checkpoint_evaluations_domain_loss_gets_the_jobs_gpus(monkeypatch, tmp_path):
    import forgetbench.devices

    asked = []
    monkeypatch.setattr(forgetbench.devices, "check_visible_gpus", lambda n, job: asked.append(("visible", n)))

    def loss(*args, device, **kwargs):
        asked.append(("loss", device))
        raise SystemExit  # the lm-eval part is evaluation's own test

    monkeypatch.setattr(base_scores, "domain_loss", loss)
    job = SimpleNamespace(rule="evaluate_base_checkpoint", threads=1, output=Files(json=str(tmp_path / "m.json")),
                          log=Files(log=str(tmp_path / "log")), wildcards=Files(model="m"),
                          input=Files(base="base", domain_test="test.jsonl"),
                          params=Files(evaluation={"batch_size": 8}, gpus=4, domain_format="label", max_len=128,
                                       chat_template="auto"))
    with pytest.raises(SystemExit):
        runpy.run_path(str(REPO / "workflow/scripts/evaluate_checkpoint.py"), init_globals={"snakemake": job})
    assert asked == [("visible", 4), ("loss", "auto")]
