"""GPU checks: run on a machine with CUDA and vLLM (`pytest -m gpu`); skipped elsewhere."""


import pytest

from tests.helpers import cuda_available, vllm_test_model

pytestmark = pytest.mark.gpu


@pytest.mark.skipif(not cuda_available(), reason="needs CUDA")
def test_vllm_teacher_samples_k_per_problem_reproducibly(compose):
    model = vllm_test_model("a local instruct model directory (or a hub id)")
    from trajfusion.data.teachers.vllm import VLLMTeacher

    cfg = compose("teacher=qwen2p5_math_7b_instruct", f"teacher.model={model}", "teacher.num_samples=4",
                  "teacher.max_new_tokens=64", "teacher.max_model_len=1024", "teacher.gpu_memory_utilization=0.5").teacher
    teacher = VLLMTeacher(cfg)
    problems = [{"id": f"p{i}", "problem": f"What is {i} times 7?", "answer": str(7 * i)} for i in range(3)]
    first = teacher.sample_batch(problems)
    again = teacher.sample_batch(problems[2:])
    assert [len(s) for s in first] == [4, 4, 4]
    assert [s["text"] for s in again[0]] == [s["text"] for s in first[2]]  # per-problem seed
    assert all(0 < s["n_tokens"] <= 64 and s["finish_reason"] in ("stop", "length") for s in first[0])
