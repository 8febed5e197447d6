"""E4SRec's training step at the real catalogue's size: step time, sequences/s and peak memory.

A prepared script for a lent GPU: a randomly initialised decoder of Qwen2.5-7B's shape (nothing
is downloaded; the weights do not matter for speed), bf16, LoRA r=32 on every projection, a
383,670-track catalogue with its 64-d ID table, batches of windows of 50 items. It times, in one
run and on the same batches:

- ``full``: the linear head with the chunked full-softmax cross-entropy on the accelerator
  (the shared loop's loss);
- ``sampled``: the same with a sampled softmax of 256 negatives;
- ``head-on-cpu``: the head kept on the CPU in float32 as the paper's code had it: the hidden
  states go to the CPU, the logits and loss are computed there, and their gradient comes back.

Each prints the median step time over ``--steps`` steps after one warm-up step, sequences/s and
the peak accelerator memory (on CPU: the process's peak resident memory so far). On this project's 2-core CPU it runs with ``--shape smollm2-135m
--device cpu`` (and a smaller ``--catalogue``) for the CPU figures.

``--completions none embed prompt`` times the completion modes too (``prompt`` adds a few text
tokens per item).

Run: ``python benchmarks/e4srec_gpu.py [--device cuda] [--shape qwen2.5-7b] [--batch 8] [--steps 5]``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F

from mmbench.baselines import e4srec
from mmbench.baselines.runner import model_config
from mmbench.baselines.training import (
    COMPLETION_BUCKETS,
    full_softmax_loss,
    next_item_targets,
    sampled_softmax_loss,
)
from mmbench.llm import packaged_llm

SHAPES = {  # transformers config classes and their sizes (from the models' published configs)
    "qwen2.5-7b": (
        "Qwen2Config",
        dict(
            hidden_size=3584,
            intermediate_size=18944,
            num_hidden_layers=28,
            num_attention_heads=28,
            num_key_value_heads=4,
            vocab_size=152064,
        ),
    ),
    "smollm2-135m": (
        "LlamaConfig",
        dict(
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            vocab_size=49152,
        ),
    ),
    "tiny": (
        "LlamaConfig",
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=49152,
        ),
    ),
}


def model_of_shape(shape: str, catalogue: int, device: torch.device, completion: str) -> e4srec.E4SRec:
    import transformers
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel, AutoTokenizer

    kind, sizes = SHAPES[shape]
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    backbone = AutoModel.from_config(getattr(transformers, kind)(**sizes), dtype=dtype)
    config = model_config("e4srec").replace(completion=completion)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules=list(config.lora_targets))  # fmt: skip
    backbone = get_peft_model(backbone, lora)
    location, options = packaged_llm("benchmarks/e4srec_gpu.py")
    tokenizer = AutoTokenizer.from_pretrained(location, **options)
    id_table = np.random.default_rng(0).normal(size=(catalogue + 1, 64)).astype(np.float32)
    trained = np.ones(catalogue + 1)
    trained[0] = 0
    model = e4srec.E4SRec(backbone, tokenizer, id_table, {}, trained, np.zeros(catalogue + 1), config)
    return model.to(device)


def step_time(model, batches, loss: str, device: torch.device, negatives: int = 256) -> tuple[float, float]:
    """Median seconds per optimizer step and peak accelerator memory (GiB) of one loss variant.

    ``head-on-cpu`` moves the linear head to the CPU for good (run it last): the hidden states go
    there, the CPU computes logits, loss and the head's AdamW step, and the hidden states'
    gradient comes back for the accelerator's step.
    """
    generator = torch.Generator().manual_seed(0)
    cpu_optimizer = None
    if loss == "head-on-cpu":
        model.output.float().cpu()
        cpu_optimizer = torch.optim.AdamW(model.output.parameters(), lr=1e-4)
    params = [p for p in model.parameters() if p.requires_grad and p.device.type == device.type]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda")
    times = []
    for i, batch in enumerate(batches):
        start = time.perf_counter()
        with autocast:
            if loss == "head-on-cpu":
                codes = batch if batch.dim() == 2 else batch[:, 0]
                inputs, targets = next_item_targets(codes)
                seqs = inputs if batch.dim() == 2 else torch.stack([inputs, batch[:, 1, :-1]], dim=1)
                hidden = model.encode(seqs, None)[..., :-1]  # without the bias column's 1
            else:
                hidden, targets, table = model(batch, generator)
            if loss == "full":
                value = full_softmax_loss(hidden, table, targets)
            elif loss == "sampled":
                value = sampled_softmax_loss(hidden, table, targets, negatives, generator)
        if loss == "head-on-cpu":
            keep = targets > 0
            on_gpu = hidden[keep].float()
            h = on_gpu.detach().cpu().requires_grad_(True)
            F.cross_entropy(model.output(h), (targets[keep] - 1).cpu()).backward()
            on_gpu.backward(h.grad.to(device))
            cpu_optimizer.step()
            cpu_optimizer.zero_grad(set_to_none=True)
        else:
            value.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i > 0:  # the first step warms up kernels and allocators
            times.append(time.perf_counter() - start)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated() / 2**30
    else:  # the process's peak resident memory so far (Linux reports KiB)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", choices=list(SHAPES), default="qwen2.5-7b")
    parser.add_argument("--catalogue", type=int, default=383_670)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--losses", nargs="+", default=["full", "sampled", "head-on-cpu"])
    parser.add_argument("--completions", nargs="+", choices=e4srec.COMPLETIONS, default=["none"])
    args = parser.parse_args()
    device = torch.device(args.device)
    rng = torch.Generator().manual_seed(1)
    shape = (args.batch, args.max_len + 1)
    items = [torch.randint(1, args.catalogue + 1, shape, generator=rng) for _ in range(args.steps + 1)]
    ratios = [torch.randint(1, COMPLETION_BUCKETS, shape, generator=rng) for _ in range(args.steps + 1)]
    for completion in args.completions:
        model = model_of_shape(args.shape, args.catalogue, device, completion).train()
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(
            f"{args.shape} on {device}, completion {completion}: {trainable / 1e6:.1f}M trainable "
            f"parameters, catalogue {args.catalogue:,}, batches of {args.batch} windows of {args.max_len} items"
        )
        batches = (
            items if completion == "none" else [torch.stack(p, 1) for p in zip(items, ratios, strict=True)]
        )
        batches = [b.to(device) for b in batches]
        for loss in args.losses:
            seconds, peak = step_time(model, batches, loss, device)
            print(
                f"  {loss:12s} step {seconds:.3f} s (median of {args.steps}), {args.batch / seconds:.2f} "
                f"sequences/s, {args.batch * args.max_len / seconds:.0f} targets/s, peak memory {peak:.1f} GiB"
            )
        del model


if __name__ == "__main__":
    main()
