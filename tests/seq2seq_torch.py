"""An independent PyTorch implementation of clstm's encoder-decoder (issue
18): the oracle for its tests and the peer of its benchmark. Import only
where torch is installed.

The architecture, as clstm computes it (Luong et al. 2015: global
attention, the "general" or "dot" score, input feeding):

    S      = BiLSTM(Emb_s(source))                 (Ts, B, Ne) encoder outputs
    K      = S W_a^T ("general"; S for "dot")      (Ts, B, Hd) keys
    h~_0   = 0;  decoder state (h, c) = 0
    step t, on the target's input token y_t (y_0 is <s>):
      h_t    = LSTM_dec([Emb_t(y_t); h~_{t-1}])    (top layer, Hd)
      a_t    = softmax_j(h_t . K_j), j < the source's length
      ctx_t  = sum_j a_tj S_j                       (Ne)
      h~_t   = tanh(W_c [ctx_t; h_t])               (A)
      logits = W_o h~_t + b_o                       (Vt)

Target ids: 0 <s> (input only), 1 </s>, 2 <unk>, then the tokens.

Beam search (per source, width K, length penalty alpha): every live
hypothesis is extended by every token; the K * V candidates are taken in
order of total log-probability (ties: lower hypothesis, then lower token
first); a candidate ending in </s> joins the finished list, the others
become the next live hypotheses, until K are live. It stops when K have
finished, no hypothesis is live, or max_len tokens were emitted (the live
ones then finish as they are). Hypotheses rank by log p / len^alpha, len
counting the tokens emitted, </s> included. Width 1 is greedy decoding.
"""
import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

BOS, EOS, UNK = 0, 1, 2


def torch_name(name):
    """TorchSeq2Seq's parameter for a clstm tensor name."""
    fixed = {"embedding.weight": "src_embedding.weight",
             "decoder.embedding.weight": "tgt_embedding.weight",
             "attention.weight": "w_a.weight", "attention.combine.weight": "w_c.weight",
             "decoder.out.weight": "out.weight", "decoder.out.bias": "out.bias"}
    if name in fixed:
        return fixed[name]
    return name if name.startswith("decoder.") else "encoder." + name


class TorchSeq2Seq(torch.nn.Module):
    def __init__(self, source_vocab, target_vocab, embedding=32, hidden=64, layers=1,
                 decoder_hidden=None, decoder_layers=1, attention="general",
                 attentional=None, dtype=torch.float64):
        super().__init__()
        Hd = decoder_hidden or 2 * hidden
        A = attentional or Hd
        Ne = 2 * hidden
        if attention == "dot" and Hd != Ne:
            raise ValueError("dot attention needs decoder_hidden == 2 * hidden")
        self.attention, self.Hd, self.A = attention, Hd, A
        self.src_embedding = torch.nn.Embedding(source_vocab, embedding)
        self.encoder = torch.nn.LSTM(embedding, hidden, layers, bidirectional=True)
        self.tgt_embedding = torch.nn.Embedding(target_vocab, embedding)
        self.decoder = torch.nn.LSTM(embedding + A, Hd, decoder_layers)
        self.w_a = torch.nn.Linear(Ne, Hd, bias=False) if attention == "general" else None
        self.w_c = torch.nn.Linear(Ne + Hd, A, bias=False)
        self.out = torch.nn.Linear(A, target_vocab)
        self.to(dtype)

    def encode(self, src, src_lens):
        """src (Ts, B) ids, src_lens (B,): (S (Ts, B, Ne), keys, mask (B, Ts))."""
        Ts = src.shape[0]
        packed = pack_padded_sequence(self.src_embedding(src), torch.as_tensor(src_lens),
                                      enforce_sorted=False)
        S, _ = self.encoder(packed)
        S, _ = pad_packed_sequence(S, total_length=Ts)
        keys = self.w_a(S) if self.w_a is not None else S
        mask = torch.arange(Ts)[None, :] < torch.as_tensor(src_lens)[:, None]
        return S, keys, mask

    def step(self, y, feed, state, S, keys, mask):
        """One decoder step for the tokens y (B,): (logits (B, V), h~, state)."""
        x = torch.cat([self.tgt_embedding(y), feed], dim=1)[None]
        h, state = self.decoder(x, state)
        h = h[0]
        scores = torch.einsum("bh,tbh->bt", h, keys).masked_fill(~mask, float("-inf"))
        a = torch.softmax(scores, dim=1)
        ctx = torch.einsum("bt,tbn->bn", a, S)
        feed = torch.tanh(self.w_c(torch.cat([ctx, h], dim=1)))
        return self.out(feed), feed, state

    def initial(self, B, like):
        L = self.decoder.num_layers
        zeros = like.new_zeros
        return zeros(B, self.A), (zeros(L, B, self.Hd), zeros(L, B, self.Hd))

    def forward(self, src, src_lens, tgt_in):
        """Teacher forcing: logits (Tt, B, V) for the input tokens tgt_in (Tt, B)."""
        S, keys, mask = self.encode(src, src_lens)
        feed, state = self.initial(src.shape[1], S)
        out = []
        for t in range(tgt_in.shape[0]):
            logits, feed, state = self.step(tgt_in[t], feed, state, S, keys, mask)
            out.append(logits)
        return torch.stack(out)

    def loss(self, src, src_lens, tgt_in, tgt_out, tgt_lens):
        """The mean cross-entropy over the valid target steps."""
        logits = self.forward(src, src_lens, tgt_in)
        mask = torch.arange(tgt_in.shape[0])[:, None] < torch.as_tensor(tgt_lens)[None, :]
        nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), tgt_out.flatten(),
                                                reduction="none").view(tgt_in.shape)
        return (nll * mask).sum() / mask.sum()

    @torch.no_grad()
    def greedy(self, src, src_lens, max_len):
        """Each source's tokens up to and without </s>."""
        S, keys, mask = self.encode(src, src_lens)
        B = src.shape[1]
        feed, state = self.initial(B, S)
        y = torch.full((B,), BOS, dtype=torch.long)
        out, done = [[] for _ in range(B)], [False] * B
        for _ in range(max_len):
            logits, feed, state = self.step(y, feed, state, S, keys, mask)
            y = logits.argmax(dim=1)
            for b in range(B):
                if not done[b]:
                    if int(y[b]) == EOS:
                        done[b] = True
                    else:
                        out[b].append(int(y[b]))
            if all(done):
                break
        return out

    @torch.no_grad()
    def beam(self, src, src_lens, width, max_len, alpha=1.0, nbest=1):
        """Per source, the nbest [(tokens without </s>, normalized score)]."""
        results = []
        for b in range(src.shape[1]):
            n = int(src_lens[b])
            S, keys, mask = self.encode(src[:n, b:b + 1], [n])
            feed, state = self.initial(1, S)
            live = [([], 0.0, feed, state)]
            finished = []
            for step in range(1, max_len + 1):
                k = len(live)
                y = torch.tensor([h[-1] if h else BOS for h, _, _, _ in live])
                feed = torch.cat([f for _, _, f, _ in live])
                state = tuple(torch.cat([s[i] for _, _, _, s in live], dim=1) for i in range(2))
                logits, feed, state = self.step(y, feed, state, S.expand(-1, k, -1),
                                                keys.expand(-1, k, -1), mask.expand(k, -1))
                logp = torch.log_softmax(logits, dim=1).numpy()
                total = np.array([s for _, s, _, _ in live])[:, None] + logp
                order = np.lexsort((np.tile(np.arange(total.shape[1]), (k, 1)).ravel(),
                                    np.repeat(np.arange(k), total.shape[1]),
                                    -total.ravel()))
                nxt = []
                for idx in order:
                    i, v = divmod(int(idx), total.shape[1])
                    toks = live[i][0] + [v]
                    if v == EOS:
                        if len(finished) < width:
                            finished.append((toks, float(total[i, v])))
                    else:
                        nxt.append((toks, float(total[i, v]), feed[i:i + 1],
                                    tuple(s[:, i:i + 1] for s in state)))
                    if len(nxt) == width:
                        break
                live = nxt
                if len(finished) >= width or not live:
                    break
            else:
                finished += [(h, s) for h, s, _, _ in live]
            ranked = sorted(((h[:-1] if h and h[-1] == EOS else h, s / len(h) ** alpha)
                             for h, s in finished), key=lambda r: -r[1])
            results.append(ranked[:nbest])
        return results

    @torch.no_grad()
    def beam_batched(self, src, src_lens, width, max_len, alpha=1.0):
        """beam()'s best hypothesis per source, computed as a batched decoder
        would (the benchmark's peer): the B * width hypotheses are one batch
        of every step, each source's next ones come from a top-k over its
        width * V candidates, and only the bookkeeping of finished
        hypotheses is per source. Ties between equal scores may break
        otherwise than beam()'s; real-valued scores rarely tie."""
        B, K = src.shape[1], width
        S, keys, mask = self.encode(src, src_lens)
        rep = lambda t, dim: t.repeat_interleave(K, dim=dim)  # noqa: E731
        S, keys, mask = rep(S, 1), rep(keys, 1), rep(mask, 0)
        feed, state = self.initial(B * K, S)
        y = torch.full((B * K,), BOS, dtype=torch.long)
        total = torch.full((B, K), float("-inf"), dtype=S.dtype)
        total[:, 0] = 0.0  # one live hypothesis, <s>, to start
        hyps = [[[] for _ in range(K)] for _ in range(B)]
        finished = [[] for _ in range(B)]
        done = [False] * B
        for step in range(max_len):
            logits, feed, state = self.step(y, feed, state, S, keys, mask)
            logp = torch.log_softmax(logits, dim=1).view(B, K, -1)
            V = logp.shape[2]
            cand = (total[:, :, None] + logp).view(B, K * V)
            scores, idx = cand.topk(min(2 * K, K * V), dim=1)  # holds K that do not end
            hyp, tok = idx // V, idx % V
            keep = torch.zeros(B, K, dtype=torch.long)
            new_total = torch.full((B, K), float("-inf"), dtype=S.dtype)
            new_tok = torch.zeros(B, K, dtype=torch.long)
            new_hyps = [[[] for _ in range(K)] for _ in range(B)]
            for b in range(B):
                if done[b]:
                    continue
                n = 0
                for s, h, v in zip(scores[b].tolist(), hyp[b].tolist(), tok[b].tolist()):
                    if s == float("-inf"):
                        break
                    toks = hyps[b][h] + [v]
                    if v == EOS:
                        if len(finished[b]) < K:
                            finished[b].append((toks, s))
                        continue
                    keep[b, n], new_total[b, n], new_tok[b, n] = h, s, v
                    new_hyps[b][n] = toks
                    n += 1
                    if n == K:
                        break
                if len(finished[b]) >= K or n == 0:
                    done[b] = True
            if all(done):
                break
            rows = (torch.arange(B)[:, None] * K + keep).view(-1)
            feed, state = feed[rows], tuple(s[:, rows] for s in state)
            y, total, hyps = new_tok.view(-1), new_total, new_hyps
        for b in range(B):
            if not done[b]:  # max_len: the live ones finish as they are
                finished[b] += [(h, s) for h, s in zip(hyps[b], total[b].tolist())
                                if s != float("-inf")]
        best = []
        for b in range(B):
            ranked = sorted(((h[:-1] if h and h[-1] == EOS else h, s / len(h) ** alpha)
                             for h, s in finished[b]), key=lambda r: -r[1])
            best.append(ranked[0][0] if ranked else [])
        return best
