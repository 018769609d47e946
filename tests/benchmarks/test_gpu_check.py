"""benchmarks.perf.gpu_check: every part's logic on the CPU with tiny shapes (a GPU session runs the real thing)."""

import math

import pytest
import torch

from benchmarks.perf import gpu_check

CPU = torch.device("cpu")


def _rows(table: str) -> list[list[str]]:
    """The body rows of a Markdown table, as stripped cells."""
    lines = [line for line in table.splitlines() if line.startswith("|")][2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the check would run for real on this CUDA machine")
def test_without_cuda_it_says_so_in_one_line_and_exits_0(capsys):
    assert gpu_check.main([]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "no CUDA device" in out[0]


@pytest.mark.parametrize("argv", [["--parts", "a,x"], ["--parts", "a,a"], ["--parts", ""], ["--device", "nonsense"]])
def test_bad_input_is_a_one_line_error_and_exit_code_2(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        gpu_check.main(argv + ["--tiny"] if "--device" in argv else argv + ["--device", "cpu", "--tiny"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("gpu_check: error:")


def test_part_a_times_every_optimizer_at_each_size_with_adamw_state_bytes():
    result = gpu_check.step_times(CPU, tiny=True)
    assert result.failures == []
    rows = _rows(result.table)
    names = ["AdamW(fused)", "AdamW(foreach)", *gpu_check.STEP_OPTIMIZERS, *gpu_check.BACKEND_ROWS]
    assert [row[1] for row in rows] == names * 2  # nano, then micro
    for row in rows:
        assert float(row[3]) > 0 and math.isfinite(float(row[3]))
        if row[1].endswith("]"):                  # an explicit backend: it stepped with that one
            assert row[2] == row[1].rstrip("]").partition("[")[2]
    # AdamW keeps exp_avg and exp_avg_sq (8 B per fp32 parameter) and a 4 B step tensor per parameter tensor.
    # nano with vocab 1024: 230,208 parameters in 21 tensors; micro: 1,053,824 in 39.
    per_size = len(names)
    for row, (numel, tensors) in zip((rows[0], rows[1], rows[per_size], rows[per_size + 1]),
                                     ((230208, 21), (230208, 21), (1053824, 39), (1053824, 39))):
        assert float(row[7]) == pytest.approx((8 * numel + 4 * tensors) / 2**20, abs=0.05)
    assert rows[0][4] == "1.00x" and rows[1][5] == "1.00x"  # each baseline against itself


def test_part_b_reports_bf16_and_the_four_qat_formats_with_consistent_throughput():
    result = gpu_check.llama_steps(CPU, tiny=True)
    assert result.failures == []
    rows = _rows(result.table)
    assert [row[0] for row in rows] == ["bf16", "bf16+int4", "bf16+fp4_e1m2", "bf16+mxfp4", "bf16+nvfp4"]
    assert rows[0][3] == "1.00x"
    for row in rows:
        ms, tokens_per_s = float(row[1]), float(row[2].replace(",", ""))
        assert tokens_per_s == pytest.approx(2 * 32 / (ms / 1e3), rel=0.01)  # tiny batch: 2 x 32 tokens
        assert abs(float(row[4]) - math.log(256)) < 0.5  # a random-init loss near ln(vocab)


def test_part_c_runs_the_smoke_preset_through_run_all_with_workers():
    result = gpu_check.smoke_suite(CPU, tiny=True)
    assert result.failures == []
    assert _rows(result.table) == [["quadratic", "2", "2", "0", "0", "cpu"]]
    assert "exit code 0, 2 runs stored" in result.title


def test_part_d_cpu_paths_agree_within_the_tolerance():
    result = gpu_check.parity(CPU, tiny=True)
    assert result.failures == []
    rows = _rows(result.table)
    assert [row[0] for row in rows] == list(gpu_check.FUSED_OPTIMIZERS)
    assert all(float(row[3]) <= gpu_check.PARITY_TOLERANCE for row in rows)


def test_parity_gradients_carry_the_spikes_on_the_stated_steps():
    grads = gpu_check.parity_gradients(gpu_check.PARITY_STEPS)
    peaks = [max(float(g.abs().max()) for g in step) for step in grads]
    spiked = {step for step, peak in enumerate(peaks, start=1) if peak > 10}  # N(0, 0.1) never reaches 10
    assert spiked == set(gpu_check.SPIKE_STEPS)


def test_a_part_that_raises_fails_the_check_and_the_others_still_run(monkeypatch, capsys):
    def broken(device, tiny):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    monkeypatch.setitem(gpu_check.RUNNERS, "a", broken)
    assert gpu_check.main(["--device", "cpu", "--tiny", "--parts", "a,d"]) == 1
    out = capsys.readouterr().out
    assert "FAILED (a) RuntimeError: CUDA error: an illegal memory access" in out
    assert "### (d) Parity" in out and "1 failure(s)" in out
