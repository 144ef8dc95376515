"""Fine-tune or unlearn SmolLM2-135M-Instruct on TOFU, on the CPU. Runs in the model server's environment
(`.venv-model`: torch, transformers), as a script; `bench/unlearn/run.py` drives it and scores its generations.

    python bench/unlearn/train.py finetune --init DIR --out DIR [--epochs N] [--retain N] [--seed N] ...
    python bench/unlearn/train.py unlearn --method npo|gd --init DIR --out DIR [--epochs N] ...

- finetune: supervised, loss on the answer tokens only, over TOFU forget01 plus a seeded sample of retain90,
  each question as a user turn in the model's own chat template (the one vLLM applies when it serves it).
- unlearn: on forget01, against the retain sample. `gd` (gradient difference): ascend the forget NLL, descend the
  retain NLL. `npo` (Zhang et al. 2024, "Negative Preference Optimization", with the retain term as in their
  NPO+RT): -2/β · log σ(-β · (log π_θ(y|x) - log π_ref(y|x))) on forget answers, plus the retain NLL; π_ref is
  the model before unlearning.

Writes the checkpoint (safetensors + tokenizer) to --out and, beside it, `generations.jsonl`: the greedy answer to
every forget01 question and to the retain sample's questions, for the driver to score.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer


def load(data: Path, split: str) -> list[dict[str, Any]]:
    return list(json.loads((data / f"{split}.json").read_text()))


def retain_sample(data: Path, n: int, seed: int) -> list[dict[str, Any]]:
    rows = load(data, "retain90")
    return random.Random(seed).sample(rows, n)


def encode(tokenizer: Any, question: str, answer: str, max_len: int) -> tuple[list[int], list[int]]:
    """Token ids of the chat (user question, assistant answer) and labels that count only the answer."""
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=False
    )
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer + "<|im_end|>", add_special_tokens=False)["input_ids"]
    ids = (prompt_ids + answer_ids)[:max_len]
    labels = ([-100] * len(prompt_ids) + answer_ids)[:max_len]
    return ids, labels


def batches(rows: list[tuple[list[int], list[int]]], size: int, rng: random.Random, pad: int) -> list[dict[str, Any]]:
    order = list(range(len(rows)))
    rng.shuffle(order)
    out = []
    for start in range(0, len(order), size):
        chunk = [rows[i] for i in order[start : start + size]]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad)
        labels = torch.full((len(chunk), width), -100)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for i, (x, y) in enumerate(chunk):
            ids[i, : len(x)] = torch.tensor(x)
            labels[i, : len(y)] = torch.tensor(y)
            mask[i, : len(x)] = 1
        out.append({"input_ids": ids, "attention_mask": mask, "labels": labels})
    return out


def sequence_logprob(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    """Sum of the answer tokens' log-probabilities, per sequence."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    labels = batch["labels"][:, 1:]
    mask = labels != -100
    picked = torch.gather(F.log_softmax(logits.float(), -1), 2, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    total: torch.Tensor = (picked * mask).sum(-1)
    return total


def nll(model: Any, batch: dict[str, Any]) -> torch.Tensor:
    loss: torch.Tensor = model(**batch).loss  # mean over answer tokens
    return loss


@torch.no_grad()
def generate(model: Any, tokenizer: Any, questions: list[str], max_new_tokens: int) -> list[str]:
    model.eval()
    tokenizer.padding_side = "left"
    out: list[str] = []
    for start in range(0, len(questions), 16):
        prompts = [
            tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
            for q in questions[start : start + 16]
        ]
        enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(ids[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    model.train()
    return [o.strip() for o in out]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["finetune", "unlearn"])
    ap.add_argument("--init", type=Path, required=True, help="the checkpoint to start from")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--data", type=Path, required=True, help="TOFU's folder (forget01.json, retain90.json)")
    ap.add_argument("--method", choices=["npo", "gd"], default="npo")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--retain", type=int, default=80, help="retain90 questions sampled (seeded)")
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--beta", type=float, default=0.1, help="NPO's inverse temperature")
    ap.add_argument("--max-len", type=int, default=160)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = random.Random(args.seed)
    tokenizer = AutoTokenizer.from_pretrained(args.init)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(args.init, dtype=torch.float32)
    model.train()
    forget = load(args.data, "forget01")
    retain = retain_sample(args.data, args.retain, args.seed)
    enc_f = [encode(tokenizer, r["question"], r["answer"], args.max_len) for r in forget]
    enc_r = [encode(tokenizer, r["question"], r["answer"], args.max_len) for r in retain]
    pad = tokenizer.pad_token_id

    reference: Any = None
    if args.mode == "unlearn" and args.method == "npo":
        reference = AutoModelForCausalLM.from_pretrained(args.init, dtype=torch.float32)
        reference.eval()
        for p in reference.parameters():
            p.requires_grad_(False)

    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)
    started = time.monotonic()
    log: list[dict[str, Any]] = []
    for epoch in range(args.epochs):
        steps: list[tuple[dict[str, Any], dict[str, Any] | None]]
        if args.mode == "finetune":
            steps = [(b, None) for b in batches(enc_f + enc_r, args.batch, rng, pad)]
        else:  # one forget batch beside one retain batch per step
            fb = batches(enc_f, args.batch, rng, pad)
            rb = batches(enc_r, args.batch, rng, pad)
            steps = [(fb[i], rb[i % len(rb)]) for i in range(len(fb))]
        total = 0.0
        for first, second in steps:
            if args.mode == "finetune":
                loss = nll(model, first)
            elif args.method == "gd":
                assert second is not None
                loss = -nll(model, first) + nll(model, second)
            else:
                assert second is not None and reference is not None
                with torch.no_grad():
                    ref = sequence_logprob(reference, first)
                ratio = sequence_logprob(model, first) - ref
                loss = -(2 / args.beta) * F.logsigmoid(-args.beta * ratio).mean() + nll(model, second)
            optimizer.zero_grad()
            torch.autograd.backward(loss)  # typed, unlike Tensor.backward; the same call
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            total += loss.item()
        row = {"epoch": epoch + 1, "loss": total / len(steps), "seconds": round(time.monotonic() - started, 1)}
        log.append(row)
        print(json.dumps(row), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out)
    tokenizer.save_pretrained(args.out)
    questions = [("forget01", r) for r in forget] + [("retain", r) for r in retain]
    answers = generate(model, tokenizer, [r["question"] for _, r in questions], args.max_new_tokens)
    with open(args.out / "generations.jsonl", "w") as f:
        for (split, r), a in zip(questions, answers, strict=True):
            f.write(json.dumps({"split": split, "question": r["question"], "gold": r["answer"], "answer": a}) + "\n")
    (args.out / "train_log.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "epochs": log}, indent=1)
    )


if __name__ == "__main__":
    main()
