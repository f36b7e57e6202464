"""clstm's encoder-decoder against the same model in PyTorch (issue 18):
training throughput in target tokens per second, and batched beam-search
decoding in words per second, measured in one run on the same batches.

    python bench/seq2seq_speed.py [--model G2P.safetensors] [--repeats 7]

The peer is tests/seq2seq_torch.py's TorchSeq2Seq (the tests' oracle: the
same architecture, computed by torch.nn.LSTM, nn.Linear and torch ops),
holding clstm's weights, in float32, with torch.set_num_threads equal to
clstm's threads.

- Training step: forward, the mean cross-entropy over the target tokens,
  backward, gradient-norm clipping at 5 and an Adam step (torch.optim.Adam,
  its default foreach implementation), both sides. Batches: --batch pairs
  of the G2P training set in clstm's bucketed order (similar source
  lengths), the same batches for both. The median over repeats of --steps
  steps each, the peers interleaved.
- Decoding: --words dev words, --batch at a time, a beam of --beam with
  length normalization 1: clstm's Seq2Seq.beam_search against the peer's
  beam_batched (every step's B * width hypotheses in one batch, top-k over
  each source's candidates). Both get max_len = clstm translate's default.
  The share of words where both find the same best hypothesis is printed
  (they differ only where scores tie to rounding). The peer's choice of
  the next hypotheses is a Python loop per source over its top 2 * width
  candidates (about 1 ms a step at 64 sources), and it steps every row
  until the batch's last source ends; clstm's search is all C and steps
  only the live hypotheses.

--model: a trained model (e.g. from bench/g2p.py), so that searches end
where a trained model ends them; without it, a model of the benchmark's
sizes with clstm's initial weights (its hypotheses run to max_len).
Without ../shared/data/g2p, random words of G2P's lengths are used.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
G2P = os.path.join(HERE, "..", "..", "shared", "data", "g2p")

import clstm  # noqa: E402
from clstm import losses, optim, pairs  # noqa: E402
from clstm.tasks import TranslationTask  # noqa: E402
from machine import cpu_model  # noqa: E402


def data(n_words, rng):
    """(train, dev) Pairs: the G2P split, or random words of its lengths."""
    if os.path.isdir(G2P):
        return (pairs.read_pairs(os.path.join(G2P, "train.tsv"), "char", "space"),
                pairs.read_pairs(os.path.join(G2P, "dev.tsv"), "char", "space"))
    letters, phones = list("abcdefghijklmnopqrstuvwxyz'"), ["P%d" % i for i in range(39)]

    def words(n):
        src = [list(rng.choice(letters, rng.integers(2, 15))) for _ in range(n)]
        return pairs.Pairs(src, [list(rng.choice(phones, max(1, len(s) - 1))) for s in src])
    return words(20000), words(n_words)


def peer_of(model, torch):
    from seq2seq_torch import TorchSeq2Seq, torch_name
    peer = TorchSeq2Seq(model.vocab_size, model.target_vocab, embedding=model.input_size,
                        hidden=model.hidden_size, layers=model.num_layers,
                        decoder_hidden=model.decoder_hidden, decoder_layers=model.decoder_layers,
                        attention=model.attention, attentional=model.attentional_size,
                        dtype=torch.float32)
    if model.dropout:
        peer.encoder.dropout = model.dropout
    params = dict(peer.named_parameters())
    with torch.no_grad():
        for name, value in model.named_parameters().items():
            params[torch_name(name)].copy_(torch.as_tensor(value))
    return peer


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="a trained encoder-decoder (default: initial weights)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=20, help="training steps per repeat")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--words", type=int, default=512, help="words decoded per repeat")
    ap.add_argument("--beam", type=int, default=5)
    args = ap.parse_args()
    import torch
    torch.set_num_threads(args.threads)
    clstm.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    train, dev = data(args.words, rng)
    if args.model:
        model = clstm.load(args.model)
        sv, tv = model.source_vocabulary, model.target_vocabulary
    else:
        sv, tv = train.vocabularies()
        model = clstm.Seq2Seq(sv, tv, embedding=64, hidden_size=256, num_layers=2, dropout=0.3,
                              decoder_hidden=256, target_split="space", seed=0)
    print("# clstm encoder-decoder against PyTorch\n")
    print("- CPU: %s; threads: %d (clstm.set_num_threads, torch.set_num_threads)"
          % (cpu_model(), args.threads))
    print("- versions: clstm %s, torch %s, numpy %s" % (clstm.__version__, torch.__version__,
                                                       np.__version__))
    print("- model: %r (%s)" % (model, args.model or "initial weights"))
    print("- load average at start: %s" % " ".join("%.2f" % v for v in os.getloadavg()))
    print("- command: `%s`\n" % " ".join(["python"] + sys.argv))

    # ---------------------------------------------------------------- training
    task = TranslationTask(train, None, args.batch, source_vocab=sv, target_vocab=tv)
    order = task.epoch_order(np.random.default_rng(1))
    batches = [task.batch(k, order) for k in range(args.steps)]
    tokens = sum(int(t[2].sum()) for _, t, _ in batches)
    peer = peer_of(model, torch)
    peer.train()
    opt_c = optim.Adam(model, lr=1e-4)
    opt_t = torch.optim.Adam(peer.parameters(), lr=1e-4)
    T = torch.as_tensor

    def clstm_steps():
        for src, (tin, tout, tl), sl in batches:
            z = model.forward(src, tin, src_lengths=sl, tgt_lengths=tl, train=True)
            _, dz = losses.cross_entropy(z, tout, tl)
            model.zero_grad()
            model.backward(dz)
            optim.clip_grad_norm(model, 5.0)
            opt_c.step()

    def torch_steps():
        for src, (tin, tout, tl), sl in batches:
            opt_t.zero_grad()
            loss = peer.loss(T(src).long(), sl, T(tin).long(), T(tout).long(), tl)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(peer.parameters(), 5.0)
            opt_t.step()

    times = {"clstm": [], "torch": []}
    clstm_steps(), torch_steps()  # warm-up
    for _ in range(args.repeats):
        for name, fn in (("clstm", clstm_steps), ("torch", torch_steps)):
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("## Training: target tokens per second\n")
    print("%d steps of batch %d (%d target tokens, </s> included) per repeat; median of %d "
          "repeats.\n" % (args.steps, args.batch, tokens, args.repeats))
    table(med, "step", args.steps, "target tokens", tokens)

    # ---------------------------------------------------------------- decoding
    model = clstm.load_bytes(clstm.save_bytes(model)) if args.model else model
    peer = peer_of(model, torch)  # the trained (or trained-on) weights, both sides
    peer.eval()
    words = []
    seen = set()
    for s in dev.sources:
        if tuple(s) not in seen:
            seen.add(tuple(s))
            words.append(s)
        if len(words) == args.words:
            break
    chunks = [model.encode_sources(words[i:i + args.batch])[:2]
              for i in range(0, len(words), args.batch)]
    max_lens = [model.default_max_len(src.shape[0]) for src, _ in chunks]

    def clstm_decode():
        return [r for (src, sl), ml in zip(chunks, max_lens)
                for r in _best(model.beam_search(src, sl, width=args.beam, max_len=ml))]

    def torch_decode():
        return [r for (src, sl), ml in zip(chunks, max_lens)
                for r in peer.beam_batched(T(src).long(), sl.tolist(), args.beam, ml)]

    same = sum(a == b for a, b in zip(clstm_decode(), torch_decode()))
    dt = {"clstm": [], "torch": []}
    for _ in range(args.repeats):
        for name, fn in (("clstm", clstm_decode), ("torch", torch_decode)):
            t0 = time.perf_counter()
            fn()
            dt[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in dt.items()}
    print("\n## Batched beam search: words per second\n")
    print("%d dev words, %d per batch, beam %d, alpha 1; median of %d repeats. The same best "
          "hypothesis for %d of %d words.\n" % (len(words), args.batch, args.beam, args.repeats,
                                                same, len(words)))
    table(med, "batch", len(chunks), "words", len(words))


def table(med, per, n_per, unit, n_units):
    """The peers' median seconds med as rates, clstm first."""
    print("| peer | ms per %s | %s/s | its time / clstm's |" % (per, unit))
    print("|---|---|---|---|")
    for name in ("clstm", "torch"):
        print("| %s | %.1f | %.0f | %.2f |" % (name, 1e3 * med[name] / n_per,
                                               n_units / med[name], med[name] / med["clstm"]))


def _best(result):
    tokens, lengths, _ = result
    return [tokens[b, 0, :lengths[b, 0]].tolist() for b in range(tokens.shape[0])]


if __name__ == "__main__":
    main()
