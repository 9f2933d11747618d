"""Provenance: what a result file says about the code, the packages and the machine it came from."""

from __future__ import annotations

from forgetbench.provenance import cpu_facts, provenance

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni sha_ni

processor\t: 1
model name\t: AMD EPYC
"""


def test_the_cpu_is_read_from_cpuinfo(tmp_path):
    path = tmp_path / "cpuinfo"
    path.write_text(CPUINFO)
    facts = cpu_facts.__wrapped__(str(path))
    assert {k: v for k, v in facts.items() if k != "cores"} == {
        "cpu": "AMD EPYC", "cpu_id": "26/2/1", "cpu_features": ["avx2", "avx512f", "avx512_bf16", "avx512_vnni"]}


def test_every_result_carries_its_machine():
    record = provenance({"model": "m"})
    assert record["config"] == {"model": "m"} and record["machine"]["cpu"] and record["machine"]["cores"] >= 1
    assert "gpu" not in record["machine"]  # no GPU on this machine or in CI
