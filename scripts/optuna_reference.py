"""Optuna driving the PyTorch reference NER fine-tuning: the peer of
`ferrotune search` (issue 17).

The same study as scripts/search/ncbi.toml: TPE (Optuna's defaults, seeded)
and SuccessiveHalvingPruner (min_resource 1, reduction factor 3) on the
per-epoch dev entity F1, 16 trials of up to 4 epochs over lr (1e-5..3e-4,
log), batch size {8, 16, 32}, warm-up ratio (0..0.2) and weight decay
(0..0.1); the rest is reference_ner.py's "tuned" recipe (linear decay after
warm-up, no decay on biases and LayerNorm, clipping 1.0, max-len 128). Each
trial keeps its best epoch; the best trial's best epoch is scored on test.
Prints one JSON line per trial and a summary line.

  .venv/bin/python scripts/optuna_reference.py --train runs/search-data/ncbi-train-1500.tsv --threads 2
"""
import argparse
import json
import random
import time

import optuna
import torch
from conll import read_conll
from reference_ner import add_data_args, batches, encode, label_maps, predict
from seqeval.metrics import f1_score
from transformers import AutoModelForTokenClassification, AutoTokenizer, get_linear_schedule_with_warmup


def main():
    ap = argparse.ArgumentParser()
    add_data_args(ap)
    ap.add_argument("--trials", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-len", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    train, dev, test = read_conll(args.train), read_conll(args.dev), read_conll(args.test)
    labels, label2id, id2label = label_maps(train)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    tr, dv, ts = (encode(tokenizer, d, label2id, args.max_len) for d in (train, dev, test))
    dev_gold = [s[1] for s in dev]
    # The best complete trial's best epoch (the model ferrotune would keep too).
    best_overall = {"f1": -1.0, "state": None}
    epochs_done = [0]

    def objective(trial):
        lr = trial.suggest_float("lr", 1e-5, 3e-4, log=True)
        batch_size = trial.suggest_categorical("batch_size", [8, 16, 32])
        warmup = trial.suggest_float("warmup_ratio", 0.0, 0.2)
        wd = trial.suggest_float("weight_decay", 0.0, 0.1)
        torch.manual_seed(args.seed)
        rng = random.Random(args.seed)
        model = AutoModelForTokenClassification.from_pretrained(
            args.model, num_labels=len(labels), id2label=id2label, label2id=label2id)
        no_decay = lambda n: n.endswith("bias") or "LayerNorm" in n
        groups = [
            {"params": [p for n, p in model.named_parameters() if not no_decay(n)], "weight_decay": wd},
            {"params": [p for n, p in model.named_parameters() if no_decay(n)], "weight_decay": 0.0},
        ]
        opt = torch.optim.AdamW(groups, lr=lr)
        steps = args.epochs * ((len(tr) + batch_size - 1) // batch_size)
        sched = get_linear_schedule_with_warmup(opt, int(warmup * steps), steps)
        best, best_state = -1.0, None
        for epoch in range(1, args.epochs + 1):
            model.train()
            for ids, mask, lab, _ in batches(tr, batch_size, tokenizer.pad_token_id, True, rng):
                model(input_ids=ids, attention_mask=mask, labels=lab).loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                sched.step()
                opt.zero_grad()
            epochs_done[0] += 1
            f1 = f1_score(dev_gold, predict(model, dv, dev, id2label, tokenizer.pad_token_id))
            if f1 > best:
                best, best_state = f1, {k: v.clone() for k, v in model.state_dict().items()}
            trial.report(f1, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        if best > best_overall["f1"]:
            best_overall.update(f1=best, state=best_state)
        return best

    sampler = optuna.samplers.TPESampler(seed=args.seed)
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    t0 = time.time()
    for _ in range(args.trials):
        trial = study.ask()
        try:
            value = objective(trial)
            study.tell(trial, value)
            state = "complete"
        except optuna.TrialPruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            state, value = "pruned", None
        frozen = study.trials[-1]
        print(json.dumps({"trial": frozen.number, "state": state, "epochs": len(frozen.intermediate_values),
                          "dev_f1": value, "last_dev_f1": frozen.intermediate_values[max(frozen.intermediate_values)],
                          "params": frozen.params}), flush=True)
    seconds = time.time() - t0

    model = AutoModelForTokenClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=id2label, label2id=label2id)
    model.load_state_dict(best_overall["state"])
    test_f1 = f1_score([s[1] for s in test], predict(model, ts, test, id2label, tokenizer.pad_token_id))
    print(json.dumps({
        "side": "optuna+pytorch", "trials": len(study.trials), "epochs": epochs_done[0],
        "budget": args.trials * args.epochs, "best_trial": study.best_trial.number,
        "best_params": study.best_params, "best_dev_f1": round(study.best_value, 4), "best_test_f1": round(test_f1, 4),
        "pruned": sum(t.state == optuna.trial.TrialState.PRUNED for t in study.trials), "seconds": round(seconds),
    }))


if __name__ == "__main__":
    main()
