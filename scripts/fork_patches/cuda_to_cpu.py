"""Give a fork layer whose CPU code is NOT_IMPLEMENTED the fork's own GPU code, run on the CPU.

Usage (from a fork's build copy): python3 cuda_to_cpu.py src/caffe/layers/x_layer.cu

rbgirshick/caffe-fast-rcnn implements SmoothL1Loss and ROIPooling's backward only in CUDA. To get
golden numbers from the fork's own code on a CPU-only build, the .cu file's kernels and
``*_gpu`` methods are rewritten mechanically into host code (a kernel's ``CUDA_KERNEL_LOOP``
becomes a plain loop over the same indices, ``caffe_gpu_*`` the matching ``caffe_cpu_*`` call,
``gpu_data`` ``cpu_data``) and put in place of the ``NOT_IMPLEMENTED`` ``*_cpu`` methods of the
.cpp file; methods the .cpp implements are kept as they are. The arithmetic is the kernels'
own, statement for statement (one reduction, ``caffe_gpu_dot``, sums in another order).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

CALLS = {
    "caffe_gpu_sub": "caffe_sub", "caffe_gpu_add": "caffe_add", "caffe_gpu_mul": "caffe_mul",
    "caffe_gpu_div": "caffe_div", "caffe_gpu_set": "caffe_set", "caffe_gpu_scal": "caffe_scal",
    "caffe_gpu_axpby": "caffe_cpu_axpby", "caffe_gpu_axpy": "caffe_axpy",
    "caffe_gpu_scale": "caffe_cpu_scale",
    "caffe_gpu_gemm": "caffe_cpu_gemm", "caffe_gpu_gemv": "caffe_cpu_gemv",
}


def functions(text: str) -> list[tuple[int, int, str]]:
    """(start, end, header) of each top-level ``template <...> ... name(...) { ... }`` in text."""
    found = []
    for match in re.finditer(r"template <typename Dtype>\s*\n", text):
        brace = text.index("{", match.end())
        depth, i = 0, brace
        while True:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
                if depth == 0:
                    break
            i += 1
        found.append((match.start(), i + 1, text[match.end():brace]))
    return found


def to_host(code: str) -> str:
    code = re.sub(r"__global__\s+void", "void", code)
    code = re.sub(r"CUDA_KERNEL_LOOP\((\w+),\s*(\w+)\)", r"for (int \1 = 0; \1 < (\2); ++\1)", code)
    code = re.sub(r"<<<[^>]*>>>", "", code)
    code = re.sub(r"\s*CUDA_POST_KERNEL_CHECK;", "", code)
    code = re.sub(r"caffe_gpu_dot\(([^;]*),\s*&(\w+)\);", r"\2 = caffe_cpu_dot(\1);", code)
    code = re.sub(r"caffe_gpu_asum\(([^;]*),\s*&(\w+)\);", r"\2 = caffe_cpu_asum(\1);", code)
    for gpu, cpu in CALLS.items():
        code = re.sub(rf"\b{gpu}\b", cpu, code)
    code = re.sub(r"\b(mutable_)?gpu_(data|diff)\(", r"\1cpu_\2(", code)
    code = re.sub(r"\b(Forward|Backward)_gpu\b", r"\1_cpu", code)
    code = re.sub(r"(?<![\w:.])(abs|min|max)\(", r"std::\1(", code)
    left = [line for line in code.splitlines() if "gpu" in line]
    if left:
        raise SystemExit(f"cuda_to_cpu: GPU code left after the rewrite: {left}")
    return code


def main(cu_path: str) -> None:
    cu = Path(cu_path)
    cpp = cu.with_suffix(".cpp")
    cpp_text = cpp.read_text()
    host_parts = []
    for start, end, header in functions(cu.read_text()):
        body = cu.read_text()[start:end]
        method = re.search(r"::(Forward|Backward)_gpu\b", header)
        if method is None:
            host_parts.append(to_host(body))  # a kernel
            continue
        name = f"{method.group(1)}_cpu"
        for c_start, c_end, c_header in functions(cpp_text):
            if re.search(rf"::{name}\b", c_header) and "NOT_IMPLEMENTED" in cpp_text[c_start:c_end]:
                cpp_text = cpp_text[:c_start] + cpp_text[c_end:]
                host_parts.append(to_host(body))
                break
    marker = "#ifdef CPU_ONLY"
    if marker not in cpp_text:
        raise SystemExit(f"{cpp}: no '{marker}'")
    host = "// --- the fork's CUDA code, run on the CPU (scripts/fork_patches/cuda_to_cpu.py) ---\n"
    host += "\n\n".join(host_parts) + "\n\n"
    cpp_text = cpp_text.replace(marker, host + marker, 1)
    if "#include <cmath>" not in cpp_text:
        cpp_text = "#include <algorithm>\n#include <cmath>\n" + cpp_text
    cpp.write_text(cpp_text)
    print(f"{cpp}: {len(host_parts)} functions from {cu.name}")


if __name__ == "__main__":
    for path in sys.argv[1:]:
        main(path)
