"""Config validation: the schema, the checks beyond it, the method registry and the cells."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from forgetbench.config.checks import check_values
from forgetbench.config.schema import find_unknown_keys, load_schema
from forgetbench.config.sweep import cells, format_lr
from forgetbench.errors import ConfigError
from forgetbench.methods import get_method, method_names, register
from forgetbench.methods.base import Method

from conftest import REPO

SCHEMA_PATH = str(REPO / "workflow/schemas/config.schema.yaml")


@pytest.fixture
def config():
    with open(REPO / "config.yaml") as f:
        return yaml.safe_load(f)


def full_check(config):
    schema = load_schema(SCHEMA_PATH)
    find_unknown_keys(config, schema, "config.yaml")
    validate(config, SCHEMA_PATH)
    check_values(config, "config.yaml")
    return config


def test_default_config_is_valid_and_filled_with_defaults(config):
    full_check(config)
    assert config["training"]["grad_accum"] == 1
    assert config["training"]["weight_decay"] == 0.0
    assert config["methods"]["lora"] == {"r": 16, "alpha": 32, "dropout": 0.05, "target_modules": "all-linear"}
    assert config["methods"]["sft"] == {}
    assert config["evaluation"]["general"]["arc_easy"]["num_fewshot"] == 0


def test_default_config_fans_out_over_models_methods_lrs(config):
    full_check(config)
    got = cells(config)
    # SmolLM2: 9 evaluated methods (wise with one α) × 2 LRs; Gemma: sft and lora × 2 LRs
    assert len(got) == 9 * 2 + 2 * 2
    assert got[0].path == "smollm2-135m/sft/lr~2e-05/seed~0"
    assert {c.method for c in got if c.model == "gemma3-270m"} == {"sft", "lora"}


def test_model_methods_pick_from_the_experiments_methods(config):
    config["models"]["gemma3-270m"]["methods"] = ["sft", "model_stock"]
    with pytest.raises(ConfigError, match=r"models.gemma3-270m.methods: 'model_stock' is not one of the experiment's methods"):
        full_check(config)


def test_model_methods_need_the_source_of_a_posthoc_method(config):
    config["models"]["gemma3-270m"]["methods"] = ["lora", "wise"]
    with pytest.raises(ConfigError, match=r"models.gemma3-270m.methods: 'wise' transforms the 'sft' checkpoint: add 'sft'"):
        full_check(config)


def test_lr_spelling_in_paths():
    assert format_lr(2e-5) == "2e-05"
    assert format_lr(0.0002) == "0.0002"
    assert format_lr(1) == "1"


def test_misspelt_top_level_key_suggests_the_near_one(config):
    config["learning_rate"] = config.pop("learning_rates")
    with pytest.raises(ConfigError, match=r"config.yaml: unknown key 'learning_rate' \(did you mean 'learning_rates'\?\)"):
        full_check(config)


def test_misspelt_nested_key_names_its_path(config):
    config["training"]["bach_size"] = 4
    with pytest.raises(ConfigError, match=r"unknown key 'training.bach_size' \(did you mean 'batch_size'\?\)"):
        full_check(config)


def test_a_renamed_key_names_its_successor(config):
    config["training"]["dtype"] = "bfloat16"
    with pytest.raises(ConfigError, match=r"^config.yaml: 'training.dtype' is now training.precision \(fp32, bf16-mixed"):
        full_check(config)


@pytest.mark.parametrize("lrs, text", [([0.0], "0.0 is less than or equal to the minimum of 0"),
                                        ([-1e-5], "less than or equal to the minimum of 0"),
                                        ([], "should be non-empty|is too short")])
def test_bad_learning_rates_are_rejected(config, lrs, text):
    config["learning_rates"] = lrs
    with pytest.raises(Exception, match=text):
        full_check(config)


def test_unknown_method_names_the_near_one(config):
    config["methods"]["lroa"] = {}
    with pytest.raises(ConfigError, match=r"unknown method 'lroa' \(did you mean 'lora'\?\)"):
        full_check(config)


def test_method_hyperparameter_out_of_range(config):
    config["methods"]["lora"]["r"] = 0
    with pytest.raises(ConfigError, match=r"config.yaml: methods.lora.r: 0 is less than the minimum of 1"):
        full_check(config)


def test_unknown_method_hyperparameter(config):
    config["methods"]["lora"]["rank"] = 8
    with pytest.raises(ConfigError, match=r"methods.lora: Additional properties are not allowed \('rank' was unexpected\)"):
        full_check(config)


def test_posthoc_method_needs_the_sft_checkpoint(config):
    config["methods"] = {"lora": {}, "wise": {"alphas": [0.5]}}
    config["models"]["gemma3-270m"].pop("methods")
    with pytest.raises(ConfigError, match="methods.wise transforms the 'sft' checkpoint: add 'sft' to methods"):
        full_check(config)


def test_posthoc_variants_become_cells(config):
    config["methods"] = {"sft": {}, "lora": {}, "wise": {"alphas": [0.25, 0.5]}, "lines": {}}
    full_check(config)
    methods = sorted({c.method for c in cells(config)})
    assert methods == ["lines", "lora", "sft", "wise-0.25", "wise-0.5"]
    wise_cell = next(c for c in cells(config) if c.method == "wise-0.5")
    assert (wise_cell.registry_name, wise_cell.variant) == ("wise", "0.5")


def test_named_method_instances_become_cells_of_their_registered_method(config):
    """LoRA at several ranks in one sweep (LoRA Learns Less and Forgets Less): each a methods key of its own."""
    config["methods"] = {"sft": {}, "lora-r16": {"method": "lora", "r": 16, "alpha": 32},
                         "lora-r64": {"method": "lora", "r": 64, "alpha": 128}}
    config["models"]["gemma3-270m"].pop("methods")
    full_check(config)
    assert config["methods"]["lora-r64"] == {"method": "lora", "r": 64, "alpha": 128, "dropout": 0.05,
                                             "target_modules": "all-linear"}
    got = {(c.method, c.registry_name) for c in cells(config)}
    assert got == {("sft", "sft"), ("lora-r16", "lora"), ("lora-r64", "lora")}
    from forgetbench.config.sweep import method_hparams, method_instance

    assert method_hparams(config, "lora-r64")["r"] == 64 and "method" not in method_hparams(config, "lora-r64")
    assert method_instance(config, "lora-r16").hparams["r"] == 16


@pytest.mark.parametrize("methods, text", [
    ({"lora-r16": {"method": "lorra"}}, r"config.yaml: methods.lora-r16.method: unknown method 'lorra' \(did you mean 'lora'\?\)"),
    ({"lora-r16": {"method": "lora", "r": 0}}, r"config.yaml: methods.lora-r16.r: 0 is less than the minimum of 1"),
    ({"base": {"method": "sft"}}, r"config.yaml: methods.base: the name 'base' is reserved"),
    ({"lora-r16": {"method": ["lora"]}}, r"config.yaml: methods.lora-r16.method: give a registered method's name"),
])
def test_bad_named_method_instances_are_refused(config, methods, text):
    config["methods"] = {"sft": {}, **methods}
    config["models"]["gemma3-270m"].pop("methods")
    with pytest.raises(ConfigError, match=text):
        full_check(config)


def test_every_method_file_registers_itself_and_the_papers_methods_are_there():
    """The method list comes from the registry: each file of the package but the shared code registers one
    method, found without a list of imports; a new file adds a name without editing this test."""
    import forgetbench.methods as package

    files = {p.stem for p in Path(package.__file__).parent.glob("*.py") if not p.stem.startswith("_")}
    registered = {get_method(name).__module__.rpartition(".")[2]: name for name in method_names()}
    assert sorted(registered) == sorted(files - {"base", "posthoc", "registry"})
    assert set(registered.values()) >= {"dft", "flow", "hft", "l2", "lines", "lora", "sft", "talr", "wise"}


def test_registry_rejects_a_duplicate_name_naming_both_classes_and_files():
    class Again(Method):
        name = "sft"

    sft_file = str(Path(get_method("sft").__module__.replace(".", "/")).with_suffix(".py"))
    with pytest.raises(ValueError) as error:
        register(Again)
    assert str(error.value).startswith("method 'sft' registered twice: forgetbench.methods.sft.SFT (")
    assert sft_file in str(error.value) and __file__ in str(error.value)
    assert (f" and {__name__}.test_registry_rejects_a_duplicate_name_naming_both_classes_and_files.<locals>.Again "
            f"({__file__})") in str(error.value)
    assert method_names().count("sft") == 1 and get_method("sft").__name__ == "SFT"


def test_missing_gguf_package_is_named(config):
    config["models"]["smollm2-135m"]["package"] = "no_such_model_pkg"
    with pytest.raises(ConfigError, match=r"models.smollm2-135m.package: Python package 'no_such_model_pkg' is not installed"):
        full_check(config)


def test_missing_local_model_path_is_named(config, tmp_path):
    config["models"] = {"mine": {"source": "local", "path": str(tmp_path / "nope")}}
    with pytest.raises(ConfigError, match=r"models.mine.path: '.*nope' is not a Hugging Face model directory"):
        full_check(config)


def test_unknown_model_source(config):
    config["models"]["smollm2-135m"]["source"] = "ftp"
    with pytest.raises(Exception, match="'ftp' is not one of"):
        full_check(config)


def test_hub_source_needs_an_id(config):
    config["models"] = {"qwen": {"source": "hub"}}
    with pytest.raises(ConfigError, match="models.qwen: source 'hub' needs the key 'id'"):
        full_check(config)


def test_bad_model_name_is_rejected(config):
    config["models"]["bad/name"] = copy.deepcopy(config["models"]["smollm2-135m"])
    with pytest.raises(Exception, match="does not match"):
        full_check(config)


@pytest.mark.parametrize("change, text", [
    (lambda e: e["general"].update(winogrande={"source": "hub", "limit": 0}), r"-0 is less than the minimum of 1|0 is less than the minimum of 1"),
    (lambda e: e["general"].update(mmlu={}), r"config.yaml: evaluation task 'mmlu' has no offline data"),
    (lambda e: e["general"].update(gsm8k={"num_fewshot": -1}), r"-1 is less than the minimum of 0"),
    (lambda e: e["families"].update(more=["arc_easy"]),
     r"config.yaml: evaluation.families.more: 'arc_easy' is already in family 'all'"),
    (lambda e: e["families"].update(mc=["arc_challenge"]),
     r"evaluation.families.mc: 'arc_challenge' is not an evaluated task"),
    (lambda e: e["families"].update(metrics=["domain"]), r"evaluation.families.metrics: a family name is"),
    (lambda e: e["families"].update(domain=["piqa"]), r"'piqa' is already in family 'all'"),
])
def test_bad_evaluation_settings_fail_at_config_check(config, change, text):
    change(config["evaluation"])
    with pytest.raises(Exception, match=text):
        full_check(config)


def test_evaluation_families_group_tasks_and_leave_the_rest_alone(config):
    from forgetbench.config.tasks import eval_families

    full_check(config)
    assert eval_families(config["evaluation"]) == {"all": ["domain", "domain_loss", "general_text", "arc_easy", "piqa"]}
    config["evaluation"]["families"] = {"general": ["arc_easy", "general_text"]}
    assert eval_families(config["evaluation"]) == {
        "general": ["arc_easy", "general_text"], "piqa": ["piqa"], "domain": ["domain"], "domain_loss": ["domain_loss"]}
    config["evaluation"]["families"] = {}
    assert list(eval_families(config["evaluation"])) == ["arc_easy", "piqa", "domain", "domain_loss", "general_text"]


def test_hub_task_without_local_data_fails_at_config_check_when_offline(config, tmp_path, monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config["evaluation"]["general"]["ifeval"] = {"source": "hub"}
    with pytest.raises(ConfigError) as err:
        full_check(config)
    text = str(err.value)
    assert text.startswith("config.yaml: evaluation task 'ifeval' (source: hub, lm-eval task 'ifeval')")
    assert "google/IFEval" in text and "datasets.load_dataset" in text and "\n" not in text


def test_learning_rates_that_share_a_cell_name_are_rejected(config):
    config["learning_rates"] = [1e-5, 1.0000001e-5]
    with pytest.raises(ConfigError, match=r"config.yaml: learning_rates: 1e-05 and 1.0000001e-05 give the same cell name 'lr~1e-05'"):
        full_check(config)


def test_wise_alphas_that_share_a_cell_name_are_rejected(config):
    config["methods"]["wise"]["alphas"] = [0.5, 0.5000001]
    with pytest.raises(ConfigError, match=r"config.yaml: methods.wise.alphas: 0.5 and 0.50000009999999995 give the same cell name 'wise-0.5'"):
        full_check(config)


def test_a_gguf_file_that_is_not_gguf_is_named(tmp_path, monkeypatch):
    from forgetbench.models.gguf import package_gguf_path

    package = tmp_path / "fake_gguf_model"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "model.gguf").write_bytes(b"PK\x03\x04 a zip, not a GGUF file")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match=r"fake_gguf_model/model.gguf: not a GGUF file \(its first bytes are not 'GGUF'\)"):
        package_gguf_path("fake_gguf_model")


def test_training_processes_follow_the_models_gpus(config):
    from forgetbench.config.sweep import training_processes

    config["models"]["smollm2-135m"]["gpus"] = 4
    assert training_processes(config, "smollm2-135m") == 4
    assert training_processes(config, "gemma3-270m") == 1  # resources.gpu 0: one process
    config["training"]["processes"] = 2
    assert training_processes(config, "gemma3-270m") == 2 == training_processes(config, "smollm2-135m")


def test_fsdp_without_gpus_is_refused_when_the_config_is_parsed(config):
    config["training"].update(strategy="fsdp", processes=2)
    with pytest.raises(ConfigError, match="config.yaml: training.strategy: fsdp shards over GPUs only, and model "
                                          "smollm2-135m's jobs have none"):
        full_check(copy.deepcopy(config))
    config["resources"]["gpu"] = 2
    assert full_check(config)["training"]["strategy"] == "fsdp"  # with GPUs FSDP is allowed


def test_an_lm_eval_task_name_passes_the_config_check_as_an_lm_eval_task(config):
    """Names outside the catalogue are lm-eval's (checked against its index with the inputs, not here)."""
    from forgetbench.evaluation.tasks import config_tasks, normalize_tasks

    config["evaluation"]["general"]["winogrande"] = {"limit": 8}
    full_check(config)
    assert normalize_tasks(config_tasks(config["evaluation"], config["domain"]))["winogrande"]["source"] == "lm-eval"
