"""Tiny Shakespeare character model: the first 90% of the text trains, the
last 10% validates (per-character loss in nats; a 5-gram model scores 1.69,
the goal is below 1.60).

    python bench/shakespeare.py [--hidden 512] [--layers 1] [--epochs 8] [--threads 2]

Reads ../shared/data/tinyshakespeare.txt (or --text); exits 0 without
running when it is absent. Uses the same Trainer as `clstm train`.
Prints the validation curve, the model size, wall time and a sample.
"""
import argparse
import json
import os
import time

import clstm
from clstm import data as D
from clstm import train as TR

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "..", "shared", "data", "tinyshakespeare.txt")


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--text", default=DEFAULT)
    p.add_argument("--hidden", type=int, default=512)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--embedding", type=int, default=0)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--bptt", type=int, default=100)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="shakespeare.safetensors")
    p.add_argument("--json", help="write the result here")
    a = p.parse_args()
    if not os.path.exists(a.text):
        print("skipped: %s not found" % a.text)
        return 0
    clstm.set_num_threads(a.threads)
    stream = D.TextStream(D.read_text(a.text), val_fraction=0.1)
    task = TR.LanguageModelTask(stream, a.batch, a.bptt)
    enc = dict(encoding="embedding", input_size=a.embedding) if a.embedding else {}
    model = clstm.Model(hidden_size=a.hidden, num_layers=a.layers, vocab=stream.vocab,
                        output_size=len(stream.vocab), softmax=True, dropout=a.dropout,
                        seed=a.seed, **enc)
    trainer = TR.Trainer(model, task, lr=a.lr, schedule="cosine", warmup=100,
                         epochs=a.epochs, eval_every=max(1, task.n_batches // 2),
                         out=a.out, checkpoint=a.out + ".ckpt.npz", checkpoint_every=500,
                         log=a.out + ".log.jsonl", seed=a.seed)
    print("Tiny Shakespeare: %d train / %d validation characters, vocabulary %d; model "
          "H=%d L=%d, %d parameters; %d steps" % (len(stream.train), len(stream.val),
                                                   len(stream.vocab), a.hidden, a.layers,
                                                   model.flat_parameters.size,
                                                   trainer.total_steps))
    start = time.perf_counter()
    history = trainer.fit()
    wall = time.perf_counter() - start
    best = clstm.load(a.out)
    sample = TR.generate_text(best, "ROMEO:", 400, 0.8, seed=a.seed)
    result = dict(task="tinyshakespeare", hidden=a.hidden, layers=a.layers,
                  parameters=int(model.flat_parameters.size), epochs=a.epochs,
                  best_val_loss=trainer.best_val, wall_s=round(wall, 1), threads=a.threads,
                  curve=[(r["step"], r.get("val_loss")) for r in history], sample=sample)
    print("best validation loss %.4f nats/char after %.0f s (%d parameters)"
          % (trainer.best_val, wall, model.flat_parameters.size))
    print("sample:\n" + sample)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
