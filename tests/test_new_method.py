"""Adding a method is one file and one config entry: a module dropped into the methods package registers itself
when the package discovers its modules, a duplicate name fails naming both files, and the worked example in
README.md ("## Methods", taken from the README by its markers, so the two cannot drift) trains on the tiny model
with the loss its formula gives by hand.

    .venv/bin/python -m pytest -q tests/test_new_method.py
"""

from __future__ import annotations

import importlib
import json
import re
import sys

import pytest
import torch
import yaml

import forgetbench.methods as methods
from forgetbench.config.sweep import cells
from forgetbench.methods import discover, get_method, method_names, registry

from conftest import REPO
from test_config import full_check
from test_training import TRAINING, cell, records

PROBE = '''
from forgetbench.methods.base import Method
from forgetbench.methods.registry import register


@register
class {cls}(Method):
    name = "{name}"
    hparams_schema = {{"strength": {{"type": "number", "minimum": 0, "default": 0.5}}}}
'''


def readme_example(label: str) -> str:
    """The fenced code block right after `<!-- new-method-example: {label} -->` in README.md."""
    text = (REPO / "README.md").read_text()
    found = re.search(rf"<!-- new-method-example: {re.escape(label)} -->\n```\w+\n(.*?)```", text, re.S)
    assert found, f"README.md has no code block after the marker 'new-method-example: {label}'"
    return found.group(1)


@pytest.fixture
def package_dir(tmp_path, monkeypatch):
    """A second folder of the methods package: files written there are methods.* modules once discovered. The
    registry and the imported modules are restored afterwards."""
    extra = tmp_path / "methods"
    extra.mkdir()
    monkeypatch.setattr(methods, "__path__", [*methods.__path__, str(extra)])
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    yield extra
    for name in [n for n, m in sys.modules.items() if str(getattr(m, "__file__", "")).startswith(str(extra))]:
        del sys.modules[name]


def add_file(folder, name: str, source: str):
    (folder / f"{name}.py").write_text(source)
    importlib.invalidate_caches()  # the folder's listing is cached once a file of it was looked for
    return folder / f"{name}.py"


def test_a_new_file_registers_itself_and_its_config_entry_is_accepted(package_dir):
    assert "probe" not in method_names()
    add_file(package_dir, "probe", PROBE.format(cls="Probe", name="probe"))
    found = discover(methods.__name__, methods.__path__)
    assert found[-1] == "forgetbench.methods.probe" and "forgetbench.methods.sft" in found
    assert "forgetbench.methods.base" in found  # the shared code is imported too, and registers nothing
    assert get_method("probe").__module__ == "forgetbench.methods.probe" and "probe" in method_names()

    with open(REPO / "config.yaml") as f:
        config = yaml.safe_load(f)
    config["methods"]["probe"] = {}
    full_check(config)
    assert config["methods"]["probe"] == {"strength": 0.5}


def test_files_the_package_skips(package_dir):
    add_file(package_dir, "_draft", PROBE.format(cls="Draft", name="draft"))
    (package_dir / ".#probe.py").write_text("this is an editor's lock file, not Python")
    before = method_names()
    found = discover(methods.__name__, methods.__path__)
    assert not [m for m in found if "draft" in m or "#" in m]
    assert method_names() == before


def test_a_duplicate_name_in_a_new_file_fails_naming_both_files_and_classes(package_dir):
    first = add_file(package_dir, "probe", PROBE.format(cls="Probe", name="probe"))
    discover(methods.__name__, methods.__path__)
    again = add_file(package_dir, "probe_again", PROBE.format(cls="ProbeAgain", name="probe"))
    with pytest.raises(ValueError) as error:
        discover(methods.__name__, methods.__path__)
    assert str(error.value) == (f"method 'probe' registered twice: forgetbench.methods.probe.Probe ({first}) and "
                                f"forgetbench.methods.probe_again.ProbeAgain ({again})")
    assert get_method("probe").__name__ == "Probe"

    sft = add_file(package_dir, "my_sft", PROBE.format(cls="MySFT", name="sft"))
    with pytest.raises(ValueError, match=rf"method 'sft' registered twice: forgetbench\.methods\.sft\.SFT "
                                         rf"\(.*/forgetbench/methods/sft\.py\) and forgetbench\.methods\.my_sft\.MySFT "
                                         rf"\({re.escape(str(sft))}\)"):
        discover(methods.__name__, methods.__path__)


# --- the README's worked example: focal loss --------------------------------------------------------------

def test_the_readme_focal_loss_weights_tokens_by_one_minus_p_to_the_gamma(package_dir):
    add_file(package_dir, "focal", readme_example("focal.py"))
    discover(methods.__name__, methods.__path__)
    focal = get_method("focal")
    assert (focal.name, focal.unit, focal.kind) == ("focal", "tokens", "train")
    logprobs = torch.log(torch.tensor([[0.5, 0.1, 0.9]])).requires_grad_()
    mask = torch.tensor([[True, True, False]])
    loss = focal(**focal.validate_hparams({}, "t")).loss(logprobs, mask)
    # γ = 2 (the default): (0.5² · ln 2 + 0.9² · ln 10) / 2 response tokens; the masked token counts nothing
    assert loss.item() == pytest.approx((0.25 * 0.6931471805599453 + 0.81 * 2.302585092994046) / 2, rel=1e-6)
    loss.backward()  # the weights are detached: the gradient of −w·ℓ in ℓ is −w / (2 tokens)
    assert logprobs.grad.flatten().tolist() == pytest.approx([-0.125, -0.405, 0.0], rel=1e-6)
    assert focal(gamma=0.0).loss(logprobs, mask).item() == pytest.approx(
        get_method("sft")().loss(logprobs, mask).item(), rel=1e-7)


def train(base_model, data, out, method: str, hparams: dict, lr: float, steps: int) -> list[dict]:
    """`steps` optimizer steps, each over all 4 records (test_training's cell, one batch of 4): the log's losses."""
    from forgetbench.training.run import train_cell

    run = {**cell(method, get_method(method).validate_hparams(hparams, "t")), "lr": lr,
           "training": {**TRAINING, "batch_size": 4, "max_steps": steps}}
    train_cell(str(base_model), str(data), str(out / "model"), str(out / "log.jsonl"), str(out / "run.json"), run)
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_the_readme_example_and_config_entry_train_with_the_hand_computed_loss(package_dir, tiny_model_dir,
                                                                                tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from forgetbench.atomic import write_jsonl
    from forgetbench.training.collate import Collator
    from forgetbench.training.tokenize import encode_records
    from forgetbench.training.trainer import token_logprobs

    add_file(package_dir, "focal", readme_example("focal.py"))
    discover(methods.__name__, methods.__path__)
    assert "focal" in method_names()
    with open(REPO / "config.yaml") as f:
        config = yaml.safe_load(f)
    config["methods"].update(yaml.safe_load(readme_example("config"))["methods"])
    full_check(config)
    assert config["methods"]["focal"] == {"gamma": 2.0}
    assert "smollm2-135m/focal/lr~2e-05/seed~0" in {c.path for c in cells(config)}

    data = tmp_path / "train.jsonl"
    write_jsonl(data, records(4))
    # The random tiny model gives every token p ≈ 1/49k, where (1 − p)^γ is 1 to 1e-4: after a few sft steps at a
    # high LR on these 4 records the template's tokens have p up to about 0.2, so the weights differ.
    learnt = train(tiny_model_dir, data, tmp_path / "learnt", "sft", {}, lr=3e-2, steps=5)
    assert learnt[-1]["loss"] < learnt[0]["loss"] / 3
    base = tmp_path / "learnt" / "model"

    # One step, the batch being all 4 records: the logged loss is the loss of `base` itself, before the update.
    focal_loss = train(base, data, tmp_path / "focal", "focal", config["methods"]["focal"], lr=1e-3, steps=1)[0]["loss"]
    sft_loss = train(base, data, tmp_path / "sft", "sft", {}, lr=1e-3, steps=1)[0]["loss"]

    tokenizer = AutoTokenizer.from_pretrained(base)
    batch = Collator(tokenizer)(encode_records(tokenizer, records(4), "cot", TRAINING["max_seq_len"], True).examples)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    with torch.no_grad():
        logprobs, mask = token_logprobs(model(input_ids=batch["input_ids"],
                                              attention_mask=batch["attention_mask"]).logits, batch["labels"])
    p, nll = logprobs[mask].double().exp(), -logprobs[mask].double()
    assert float(p.min()) < 0.05 and float(p.max()) > 0.15  # the weights (1 − p)² range from over 0.9 to under 0.75
    assert sft_loss == pytest.approx(float(nll.mean()), rel=1e-5)
    assert focal_loss == pytest.approx(float(((1 - p) ** 2 * nll).sum() / mask.sum()), rel=1e-5)
    assert focal_loss < 0.9 * sft_loss
