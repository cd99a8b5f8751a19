"""CTCGreedyDecoder: best-path decoding of CTC logits, the last step of a text recognizer.

Per frame the argmax over classes (the lowest index wins a tie); with merge_repeated, runs
of the same index collapse to one; blank is dropped. A kept label's score is the highest
softmax probability (over classes, in fp32) among the frames of its run. labels [N, M] and
scores [N, M] are padded with -1 and 0 past each sample's decoded length; M, the longest
decoded length of the batch, is data-dependent (at most T) and is the last output.
"""
import numpy as np

from plugkit.schema import Attr, OpSchema, TensorSpec


def _frames(lengths, n, t):
    """Valid frames per sample: `lengths` clipped to [0, T], or T for every sample."""
    if lengths is None:
        return np.full(n, t, dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.shape != (n,):
        raise ValueError(f"lengths must have shape [N] = [{n}]; got {list(lengths.shape)}")
    return np.clip(lengths.astype(np.int64), 0, t)


def _check(shape, blank):
    if len(shape) != 3:
        raise ValueError(f"logits must have rank 3 [N, T, C]; got shape {list(shape)}")
    if not 0 <= blank < shape[2]:
        raise ValueError(f"blank {blank} is outside [0, C) for C = {shape[2]}")


def reference(logits, lengths=None, *, blank=0, merge_repeated=1):
    """The definition, one sample and one frame at a time (float64)."""
    x = np.asarray(logits, dtype=np.float64)
    _check(x.shape, blank)
    n, t, _ = x.shape
    frames = _frames(lengths, n, t)
    decoded = []
    for i in range(n):
        labels, scores, previous = [], [], None
        for f in range(frames[i]):
            row = x[i, f]
            best = int(np.argmax(row))  # the first maximum: the lowest index wins a tie
            probability = 1.0 / np.sum(np.exp(row - row[best]))  # softmax at the maximum
            if merge_repeated and best == previous:
                if best != blank:
                    scores[-1] = max(scores[-1], probability)
            elif best != blank:
                labels.append(best)
                scores.append(probability)
            previous = best
        decoded.append((labels, scores))
    longest = max((len(l) for l, _ in decoded), default=0)
    labels = np.full((n, longest), -1, dtype=np.int32)
    scores = np.zeros((n, longest), dtype=np.float32)
    for i, (l, s) in enumerate(decoded):
        labels[i, :len(l)] = l
        scores[i, :len(s)] = s
    out_lengths = np.array([len(l) for l, _ in decoded], dtype=np.int32)
    return labels, scores, out_lengths, np.array(longest, dtype=np.int32)


def torch_reference(logits, lengths=None, *, blank=0, merge_repeated=1):
    """The same decode in PyTorch, all on the logits' device with no host sync (the benchmark's
    eager and torch.compile baselines): argmax and softmax maximum, runs, compaction by a
    scatter. labels and scores come back padded to T columns, since cutting them to M would
    need M on the host (a sync that CUDA graphs cannot capture); their first M columns are
    the plugin's [N, M]. Returns labels, scores, lengths and M."""
    import torch

    n, t, _ = logits.shape
    x = logits.float()
    best = torch.argmax(x, dim=2)
    probability = 1.0 / torch.exp(x - x.gather(2, best.unsqueeze(2))).sum(dim=2)
    frame = torch.arange(t, device=x.device)
    valid = frame < (t if lengths is None else lengths.clamp(0, t).unsqueeze(1))
    valid = valid.expand(n, t)
    previous = torch.cat([torch.full_like(best[:, :1], -1), best[:, :-1]], dim=1)
    starts = (best != previous) if merge_repeated else torch.ones_like(valid)
    run = torch.cumsum(starts.to(torch.int32), dim=1) - 1  # run index of each frame
    run_probability = torch.zeros(n, t, device=x.device).scatter_reduce(
        1, run.long(), torch.where(valid, probability, 0.0), "amax")
    keep = starts & valid & (best != blank)
    slot = torch.where(keep, torch.cumsum(keep.to(torch.int32), dim=1) - 1, t).long()  # column T: discarded
    labels = torch.full((n, t + 1), -1, dtype=torch.int32, device=x.device)
    labels.scatter_(1, slot, best.to(torch.int32))
    scores = torch.zeros(n, t + 1, device=x.device)
    scores.scatter_(1, slot, run_probability.gather(1, run.long()))
    out_lengths = keep.sum(dim=1, dtype=torch.int32)
    longest = out_lengths.max() if n else torch.zeros((), dtype=torch.int32, device=x.device)
    return labels[:, :t], scores[:, :t], out_lengths, longest.to(torch.int32)


def fake(logits, lengths=None, *, blank=0, merge_repeated=1):
    """Output shapes for PyTorch tracing: M is a new data-dependent size, at most T."""
    import torch

    n, t = logits.shape[0], logits.shape[1]
    longest = torch.library.get_ctx().new_dynamic_size()
    torch._check(longest <= t)
    return (logits.new_empty((n, longest), dtype=torch.int32), logits.new_empty((n, longest), dtype=torch.float32),
            logits.new_empty((n,), dtype=torch.int32), logits.new_empty((), dtype=torch.int32))


schema = OpSchema(
    name="CTCGreedyDecoder",
    version="1",
    namespace="plugkit",
    doc=__doc__,
    inputs=(TensorSpec("logits", "[N, T, C] pre-softmax scores, float32/float16/bfloat16"),
            TensorSpec("lengths", "[N] int32, valid frames per sample (clipped to [0, T]); all T when absent",
                       dtype="int32", optional=True)),
    outputs=(TensorSpec("labels", "[N, M] int32, -1 past a sample's decoded length", dtype="int32"),
             TensorSpec("scores", "[N, M] float32, 0 past a sample's decoded length", dtype="float32"),
             TensorSpec("decoded_lengths", "[N] int32, decoded length per sample", dtype="int32"),
             TensorSpec("M", "0-d int32, the longest decoded length (the size of labels' and scores' dim 1)",
                        dtype="int32")),
    attrs=(
        Attr("blank", "int32", 0, "the blank class, in [0, C)"),
        Attr("merge_repeated", "int32", 1, "1: a run of the same class is one label; 0: every non-blank frame is"),
    ),
    dtypes=("float32", "float16", "bfloat16"),
    reference=reference,
    torch_reference=torch_reference,
    # logits shapes (lengths is left out: all T frames)
    test_cases=(
        {"inputs": [(1, 1, 2)]},
        {"inputs": [(2, 16, 5)]},
        {"inputs": [(4, 40, 97)], "attrs": {"blank": 96}},
        {"inputs": [(3, 25, 37)], "attrs": {"merge_repeated": 0}},
        {"inputs": [(2, 64, 6625)]},
    ),
    bench_cases=(
        {"inputs": [(64, 112, 6625)]},
        {"inputs": [(256, 256, 97)]},
        {"inputs": [(8, 1024, 6625)]},
    ),
)
