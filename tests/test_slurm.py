"""`snakemake --profile slurm` against a real SLURM cluster: munge + slurmctld + slurmd started on this machine
by tests/slurm_cluster.sh (needs root; installs the Debian packages if missing).

The profile (slurm/config.yaml) is used unchanged, from the repository root; what only this test cluster needs
is given on the command line, as a site would in its own profile:
- its partition (`--default-resources slurm_partition=debug ...`);
- `--slurm-status-command squeue`: the test cluster has no slurmdbd, so `sacct` fails (and the plugin would
  wait forever); squeue works because MinJobAge (300 s) >= 3 x the first status-check delay;
- `--slurm-init-seconds-before-status-checks 2` instead of 40, and `--retries 0` (a failure is final at once);
- `--slurm-logdir` in the test's tmp dir, keeping the logs of successful jobs, to check that jobs ran in SLURM.

Without root, or when the cluster cannot be installed or started, the tests are skipped with the reason;
FORGETBENCH_REQUIRE_SLURM=1 (for CI) turns that skip into a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import REPO
from test_workflow import smoke_config

SCRIPT = REPO / "tests" / "slurm_cluster.sh"
CLUSTER_DIR = Path(os.environ.get("SLURM_CLUSTER_DIR", "/tmp/forgetbench-slurm"))
PARTITION = os.environ.get("SLURM_CLUSTER_PARTITION", "debug")
SLURM_TEST_OVERRIDES = [
    "--default-resources", f"slurm_partition={PARTITION}", "mem_mb=4000", "runtime=60",
    "--slurm-status-command", "squeue",
    "--slurm-init-seconds-before-status-checks", "2",
    "--retries", "0",
]
TIMEOUT = 900


# Every rule that runs as a SLURM job; the others are localrules (aggregation, tables, plots).
REMOTE_RULES = {"prepare_domain", "prepare_model", "score_base", "train", "combine_posthoc", "evaluate",
                "train_scaling", "evaluate_checkpoint", "evaluate_base_checkpoint"}


def slurm_smoke_config(tmp_path, tiny_model_dir, **changes):
    """The smoke experiment cut to one model, with SFT and its WiSE-FT average, and its scaling study (2 LoRA
    ranks and full fine-tuning at 2 steps: the 6 points the power-law fit needs at least): every rule runs.
    Each cell keeps the smoke experiment's two evaluation families (general, domain), which the profile's
    `groups` puts into one submission per cell: 18 SLURM submissions for 21 SLURM jobs' work (the full smoke
    experiment has 25 submissions). Each SLURM job pays two workflow parses (the job's snakemake and the
    srun'ed one) and its imports before its script runs, so on a 2-core machine the full smoke experiment
    would take over 10 minutes through SLURM."""
    path = smoke_config(tmp_path, tiny_model_dir)
    config = yaml.safe_load(path.read_text())
    config["models"] = {"tiny-chat": config["models"]["tiny-chat"]}
    config["methods"] = {"sft": {}, "wise": {"alphas": [0.5]}}
    assert sorted(config["evaluation"]["families"]) == ["domain", "general"]
    config.update(changes)
    path.write_text(yaml.safe_dump(config))
    return path


# ------------------------------------------------------------------------------------------------ helpers


def _env() -> dict:
    # sbatch --export=ALL hands this environment to every job: offline, and the venv's python first in PATH
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", "SLURM_CLUSTER_DIR": str(CLUSTER_DIR),
            "SLURM_CLUSTER_PARTITION": PARTITION}


class Snakemake:
    """A snakemake run started from the repository root (where `--profile slurm` is found), output to `log`."""

    def __init__(self, *args, log: Path, timeout: float = TIMEOUT):
        self.log = log
        self.deadline = time.monotonic() + timeout
        with open(log, "w") as out:
            # SIGINT at its default even where pytest runs in the background (which ignores it): interrupt() needs it
            self.proc = subprocess.Popen([sys.executable, "-m", "snakemake", *args], cwd=REPO, env=_env(),
                                         stdout=out, stderr=subprocess.STDOUT, text=True,
                                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def result(self) -> tuple[int, str]:
        """Its exit code and output. Past the deadline it is interrupted and the test fails."""
        try:
            rc = self.proc.wait(timeout=max(1.0, self.deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.interrupt()
            pytest.fail(f"snakemake {self.proc.args[3:]} timed out; its output ends:\n{self.log.read_text()[-5000:]}")
        return rc, self.log.read_text()

    def interrupt(self):
        """SIGINT, on which snakemake scancels its SLURM jobs and exits (on SIGTERM it would wait for the running
        jobs to finish); SIGKILL if it is still there a minute later."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def snakemake(*args, log: Path, timeout: float = TIMEOUT) -> tuple[int, str]:
    return Snakemake(*args, log=log, timeout=timeout).result()


def _unavailable(reason: str):
    if os.environ.get("FORGETBENCH_REQUIRE_SLURM") == "1":
        pytest.fail(f"FORGETBENCH_REQUIRE_SLURM=1 but {reason}")
    pytest.skip(reason)


EXIT_REASONS = {2: "tests/slurm_cluster.sh needs root", 3: "the SLURM packages could not be installed",
                4: "the local SLURM cluster did not start"}


@pytest.fixture(scope="module")
def slurm_cluster(request):
    """A running single-node cluster with one partition (`debug`); stopped after the module if this fixture
    started it."""
    if os.geteuid() != 0:
        _unavailable("the SLURM tests need root: tests/slurm_cluster.sh installs slurm/munge and starts their "
                     "daemons")
    already = subprocess.run(["bash", str(SCRIPT), "status"], env=_env(), capture_output=True, text=True)
    if already.returncode != 0:
        request.addfinalizer(lambda: subprocess.run(["bash", str(SCRIPT), "stop"], env=_env(), timeout=120))
        start = subprocess.run(["bash", str(SCRIPT), "start"], env=_env(), capture_output=True, text=True,
                               timeout=900)
        if start.returncode != 0:
            lines = start.stderr.splitlines()
            errors = [line.split("ERROR: ", 1)[1] for line in lines if "ERROR: " in line] or lines or ["no output"]
            why = EXIT_REASONS.get(start.returncode, f"tests/slurm_cluster.sh start failed (exit {start.returncode})")
            _unavailable(f"{why}: {errors[-1]}")
    return {"partition": PARTITION, "jobcomp": CLUSTER_DIR / "log" / "jobcomp.log"}


def slurm_run_id(output: str) -> str:
    match = re.search(r"SLURM run ID: (\S+)", output)
    assert match, "no 'SLURM run ID' in the output: did the slurm executor run?\n" + output[-3000:]
    return match.group(1)


def job_records(jobcomp: Path, run_id: str) -> dict[str, dict[str, str]]:
    """SLURM's own record (jobcomp/filetxt) of the jobs of one snakemake run (job name = run id): id -> fields
    (JobState, TimeLimit in minutes, Tres such as cpu=1,mem=4000M,node=1,billing=1, ...)."""
    jobs = {}
    for line in jobcomp.read_text().splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("Name") == run_id:
            jobs[fields["JobId"]] = fields
    return jobs


def completed_jobs(jobcomp: Path, run_id: str) -> dict[str, str]:
    """id -> state of the SLURM jobs of one snakemake run."""
    return {job_id: fields["JobState"] for job_id, fields in job_records(jobcomp, run_id).items()}


def submissions(output: str, logdir: Path) -> dict[str, str]:
    """SLURM job id -> what it ran: a rule name, or for a group job its group id (`evaluate-<model>-<cell>`).
    The plugin writes a job's log to <logdir>/rule_<rule>/<wildcards>/<id>.log, a group's to
    <logdir>/group_<group id>_<rules>/<id>.log, where the group id keeps the cell's slashes."""
    ran = {}
    for job_id, log in re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", output):
        relative = Path(log).relative_to(logdir)
        if relative.parts[0].startswith("group_"):
            ran[job_id] = str(relative.parent).removeprefix("group_").removesuffix("_evaluate")
        else:
            ran[job_id] = relative.parts[0].removeprefix("rule_")
    return ran


# -------------------------------------------------------------------------------------------------- tests


def test_the_profile_is_valid_without_a_cluster(tmp_path, tiny_model_dir):
    """Every key of slurm/config.yaml is a known option: a dry run through the profile parses it. Its groups:
    one per cell of the smoke experiment (2 models), holding that cell's two evaluation families and nothing
    else."""
    profile = yaml.safe_load((REPO / "slurm" / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert "slurm_partition" not in profile.get("default-resources", {}), "the partition is the site's choice"
    assert profile["max-jobs-per-timespan"] == "20/1m"
    assert profile["groups"] == ["evaluate=evaluate-{model}-{cell}"]
    assert profile["group-components"] == ["evaluate-{model}-{cell}=100"]
    assert profile["resources"] == ["eval_slot=1"] and profile["set-resource-scopes"] == ["eval_slot=local"]
    work = tmp_path / "work"
    rc, out = snakemake("--profile", "slurm", "-n", "--snakefile", str(REPO / "Snakefile"),
                        "--configfile", str(smoke_config(tmp_path, tiny_model_dir)), "--directory", str(work),
                        log=tmp_path / "dry.log", timeout=300)
    assert rc == 0, out[-5000:]
    assert "This was a dry-run" in out

    # A group is printed as its header line, then its jobs indented; every other job opens with a timestamp line
    # at column 0 (a dry run prints `rule`, not `localrule`, for the local merge).
    groups = {}
    for header in re.finditer(r"^\[[^\]]+\] Group job (\S+) \(jobs in lexicogr\. order\):$", out, re.M):
        end = re.compile(r"^\[[^\]]+\]( Group job|\s*$)", re.M).search(out, header.end())
        block = out[header.end():end.start() if end else len(out)]
        rules = re.findall(r"^\s+rule (\w+):$", block, re.M)
        wildcards = re.findall(r"^\s+wildcards: model=(\S+), cell=(\S+), family=(\w+)$", block, re.M)
        groups[header.group(1)] = (rules, wildcards)
    cells = set(re.findall(r"^(?:local)?rule merge_evaluations:\n(?:.*\n)*?\s+wildcards: model=(\S+), cell=(\S+)$",
                           out, re.M))
    assert len(cells) == 8  # tiny-chat: base, sft, lora, wise-0.5, lines; tiny-plain: base, sft, lora
    assert sorted(groups) == sorted(f"evaluate-{model}-{cell}" for model, cell in cells)
    for group, (rules, wildcards) in groups.items():
        assert rules == ["evaluate", "evaluate"], group
        assert sorted(family for _, _, family in wildcards) == ["domain", "general"], group
        assert {f"evaluate-{model}-{cell}" for model, cell, _ in wildcards} == {group}
    # every evaluate job is in a group: none printed at the top level
    assert not re.search(r"^rule evaluate:$", out, re.M)
    # the scaling study's checkpoint evaluations (2 LoRA ranks and full fine-tuning x 2 steps) stay one per job
    assert len(re.findall(r"^rule evaluate_checkpoint:$", out, re.M)) == 6


# The runs start in module fixtures, so that they overlap: most of a SLURM run's time is spent waiting
# (between status checks, on the next workflow parse), and the module has to stay within a few minutes.


@pytest.fixture(scope="module")
def failing_run(slurm_cluster, tmp_path_factory, tiny_model_dir):
    """Through SLURM, a model whose weights file is cut short: its config.json and safetensors header are whole,
    so the config is valid and the parse-time checks pass (they read headers, and since 2026-12-05 a local
    domain file too, which is why a malformed domain file no longer reaches a job), and the error comes from
    the prepare_model job itself, at run time, inside SLURM."""
    tmp = tmp_path_factory.mktemp("failing")
    bad = tmp / "cut-model"
    shutil.copytree(tiny_model_dir, bad)
    weights = bad / "model.safetensors"
    data = weights.read_bytes()
    header = 8 + int.from_bytes(data[:8], "little")
    weights.write_bytes(data[:header + (len(data) - header) // 2])
    config = slurm_smoke_config(tmp, tiny_model_dir, models={"tiny-chat": {"source": "local", "path": str(bad)}})
    work = tmp / "work"
    work.mkdir()
    run = Snakemake("--profile", "slurm", "--snakefile", str(REPO / "Snakefile"), "--configfile", str(config),
                    "--directory", str(work), *SLURM_TEST_OVERRIDES, "--slurm-logdir", str(tmp / "slurm-logs"),
                    "results/smoke/tiny-chat/base/model", log=tmp / "slurm.log")
    run.bad_file, run.work = bad, work
    yield run
    run.interrupt()


@pytest.fixture(scope="module")
def smoke_runs(slurm_cluster, tmp_path_factory, tiny_model_dir):
    """The smoke experiment through `--profile slurm`, and the same locally (`--cores 2`) as the reference;
    both at once (the local run fills the time the SLURM run spends waiting)."""
    tmp = tmp_path_factory.mktemp("smoke")
    common = ["--snakefile", str(REPO / "Snakefile"), "--configfile", str(slurm_smoke_config(tmp, tiny_model_dir))]
    runs = {}
    for name in ("slurm", "local"):
        (tmp / name).mkdir()
    runs["local"] = Snakemake("--cores", "2", *common, "--directory", str(tmp / "local"), log=tmp / "local.log")
    runs["slurm"] = Snakemake("--profile", "slurm", *common, "--directory", str(tmp / "slurm"),
                              *SLURM_TEST_OVERRIDES, "--slurm-logdir", str(tmp / "slurm-logs"),
                              "--slurm-keep-successful-logs", log=tmp / "slurm.log")
    runs["slurm"].work, runs["local"].work, runs["slurm"].logdir = tmp / "slurm", tmp / "local", tmp / "slurm-logs"
    yield runs
    for run in runs.values():
        run.interrupt()


@pytest.mark.slurm
def test_the_smoke_experiment_through_slurm_equals_a_local_run(slurm_cluster, failing_run, smoke_runs):
    # (failing_run is only requested so that it runs alongside; test_a_failing_slurm_job... checks it)
    rc, out = smoke_runs["slurm"].result()
    local_rc, local_out = smoke_runs["local"].result()
    assert rc == 0, out[-8000:]
    assert local_rc == 0, local_out[-5000:]

    # Every non-local job went through SLURM: one sbatch per job or group, each with its SLURM log, each COMPLETED.
    slurm_logs = smoke_runs["slurm"].logdir
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+) \(log: (\S+)\)", out)
    assert submitted, out[-5000:]
    records = job_records(slurm_cluster["jobcomp"], slurm_run_id(out))
    assert {job_id: fields["JobState"] for job_id, fields in records.items()} == {
        job_id: "COMPLETED" for job_id, _ in submitted}
    for _, log in submitted:
        assert Path(log).is_file() and Path(log).is_relative_to(slurm_logs), log
    ran = submissions(out, slurm_logs)
    groups = {job_id: group for job_id, group in ran.items() if group.startswith("evaluate-")}
    remote_rules = sorted(rule for rule in ran.values() if not rule.startswith("evaluate-"))
    assert set(remote_rules) | {"evaluate"} == REMOTE_RULES
    assert remote_rules.count("evaluate_checkpoint") == 6  # 3 scaling runs x 2 steps
    # 18 submissions: the cells' 6 evaluation families (base, sft, wise-0.5 x general, domain) in 3, one per cell
    # (21 without the profile's groups: one per family)
    assert len(ran) == 18 and len(groups) == 3, sorted(ran.values())
    cells = set(re.findall(r"localrule merge_evaluations:\n(?:.*\n)*?\s+wildcards: model=(\S+), cell=(\S+)", out))
    assert sorted(groups.values()) == sorted(f"evaluate-{model}-{cell}" for model, cell in cells)
    assert "evaluate-tiny-chat-base" in groups.values()
    for group in groups.values():
        header = out.index(f"Group job {group} (jobs in lexicogr. order):")
        block = out[header:out.index("has been submitted with SLURM jobid", header)]
        assert sorted(re.findall(r"wildcards: model=\S+, cell=\S+, family=(\w+)", block)) == ["domain", "general"]
    # What a group asked SLURM for: one family's memory and CPUs (those of an evaluate_checkpoint job, which
    # asks the same per job) for both families' runtimes, since the job step runs them one after another.
    checkpoint = next(records[job_id] for job_id, rule in ran.items() if rule == "evaluate_checkpoint")
    for job_id in groups:
        assert records[job_id]["Tres"] == checkpoint["Tres"]
        assert int(records[job_id]["TimeLimit"]) == 2 * int(checkpoint["TimeLimit"])
    for localrule in ("merge_evaluations", "aggregate", "plot_tradeoff", "aggregate_scaling", "plot_scaling"):
        assert f"localrule {localrule}:" in out  # run by the submitting snakemake
    assert "localcheckpoint base_checked:" in out  # and the checkpoint each model's training waits for
    # The local run ran the same 6 evaluation families as 6 jobs
    assert len(re.findall(r"^(?:local)?rule evaluate:$", local_out, re.M)) == 6

    # The same numbers: training and evaluation on CPU are deterministic, so the tables match exactly
    # (compared as parsed numbers, not as text).
    tables = Path("results", "smoke", "tables")
    slurm_tables = {name: pd.read_csv(smoke_runs["slurm"].work / tables / name)
                    for name in ("tradeoff.csv", "token_stats.csv", "scaling.csv")}
    for name, slurm_table in slurm_tables.items():
        local_table = pd.read_csv(smoke_runs["local"].work / tables / name)
        pd.testing.assert_frame_equal(slurm_table, local_table, check_exact=True, obj=name)
    assert sorted(slurm_tables["tradeoff.csv"]["method"]) == ["base", "sft", "wise-0.5"]
    for figure in ("tradeoff.png", "token_probs.png", "scaling_steps.png"):
        assert (smoke_runs["slurm"].work / "results" / "smoke" / "figures" / figure).stat().st_size > 10_000


@pytest.mark.slurm
def test_a_failing_slurm_job_fails_the_run_and_names_the_rule(slurm_cluster, failing_run):
    rc, out = failing_run.result()
    assert rc != 0, out[-5000:]
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", out)
    assert len(submitted) == 1, out[-5000:]
    assert "Error in rule prepare_model" in out
    assert f"SLURM-job '{submitted[0]}' failed, SLURM status is: 'FAILED'" in out
    # show-failed-logs (profile): the rule's own log, with the cause, is in the console
    assert "Error while deserializing header: incomplete metadata, file not fully covered" in out
    assert completed_jobs(slurm_cluster["jobcomp"], slurm_run_id(out)) == {submitted[0]: "FAILED"}
    assert not (failing_run.work / "results" / "smoke" / "tiny-chat" / "base" / "model").exists()
