"""Batched sampling (nbkit.sampling.sample) vs a naive one-prompt-at-a-time `generate` loop, same prompts, one run.

    python benchmarks/sampling_throughput.py                 # embedded model, 64 prompts, 64 new tokens
    python benchmarks/sampling_throughput.py --model tiny --prompts 16

Both decode greedily, so they produce (nearly) the same tokens and the ratio compares like with like. Tokens are
counted up to and including EOS, for both. The naive loop runs on a subset of the prompts (it is slow) and its
tokens/s is what is compared.
"""

import argparse
import time

import torch

from nbkit.models import describe, load
from nbkit.sampling import encode_prompts, sample
from nbkit.tasks import Arithmetic


def naive(model, tok, prompts, max_new_tokens):
    n_tokens = 0
    start = time.perf_counter()
    for ids in encode_prompts(tok, prompts):
        x = torch.tensor([ids])
        out = model.generate(
            input_ids=x,
            attention_mask=torch.ones_like(x),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tok.pad_token_id,
        )
        new = out[0, x.shape[1] :].tolist()
        n_tokens += next((i + 1 for i, t in enumerate(new) if t == tok.eos_token_id), len(new))
    return n_tokens, time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--naive-prompts", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-sizes", default="16,32,64")
    ap.add_argument("--dtype", default="auto")
    args = ap.parse_args()

    model, tok = load(args.model, dtype=args.dtype)
    task = Arithmetic(digits=(2, 3))
    prompts = [task.prompt(ex) + " Explain briefly." for ex in task.test(args.prompts)]
    print(
        f"model={args.model} {describe(model)} threads={torch.get_num_threads()} "
        f"prompts={len(prompts)} max_new_tokens={args.max_new_tokens}"
    )

    sample(model, tok, prompts[:2], max_new_tokens=4, temperature=0, progress=False)  # warm-up
    n, secs = naive(model, tok, prompts[: args.naive_prompts], args.max_new_tokens)
    naive_tps = n / secs
    print(f"naive loop      : {n:6d} tokens in {secs:7.1f}s = {naive_tps:7.1f} tok/s")
    for bs in [int(b) for b in args.batch_sizes.split(",")]:
        out = sample(
            model,
            tok,
            prompts,
            temperature=0,
            max_new_tokens=args.max_new_tokens,
            batch_size=bs,
            progress=False,
        )
        print(
            f"nbkit batch={bs:3d} : {out.n_tokens:6d} tokens in {out.seconds:7.1f}s = "
            f"{out.tokens_per_second:7.1f} tok/s   ratio {out.tokens_per_second / naive_tps:5.1f}x"
        )


if __name__ == "__main__":
    main()
