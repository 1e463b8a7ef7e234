"""How much does a benchmark reward motion? Two probes, with and without motion attributes.

[`motion_probe`][] trains two small classifiers on the pairs whose contacting predicate is one of
the motion-decided predicates ([`MOTION_PREDICATES`][dsgg_layers.data.MOTION_PREDICATES]) and
reports their
balanced accuracy (mean per-predicate recall; chance is 1 / number of predicates) on a test split:

- the **single-frame** probe sees what one frame shows: the union-region features, the subject and
  object boxes (normalised by the image size) and the object class;
- the **motion-aware** probe sees the same, plus the four MoSA motion attributes
  ([`motion_attributes`][]) of the frame and of the ``window - 1`` frame
  slots before it.

Both are the same MLP (one hidden layer, dropout, weight decay, class-balanced loss), trained
full-batch with early stopping on a fifth of the training *videos* (frames of one video are
correlated, so a frame-level split would reward memorising videos).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dsgg_layers._checks import check_positive
from dsgg_layers.boxes import normalize_boxes
from dsgg_layers.data.graph import VideoGraph
from dsgg_layers.motion import motion_attributes
from dsgg_layers.vocab import OBJECT_CLASSES, PREDICATES

__all__ = ["motion_probe"]


def _probe_inputs(
    graph: VideoGraph, predicates: Sequence[str], window: int
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Single-frame inputs, motion inputs, labels and video index of the selected pairs."""
    if graph.union_features is None:
        raise ValueError("graph: the probe needs union_features, got None")
    cols = torch.tensor([PREDICATES.index(p) for p in predicates])
    labels = graph.relations[..., cols]
    selected = graph.mask & labels.any(-1)
    size = graph.image_size[:, None, None, :]
    boxes = torch.cat(
        (normalize_boxes(graph.subject_boxes, size), normalize_boxes(graph.object_boxes, size)), -1
    )
    classes = F.one_hot(graph.object_labels.clamp(min=0), len(OBJECT_CLASSES)).float()
    single = torch.cat((graph.union_features, boxes, classes), -1)
    attrs = motion_attributes(
        graph.subject_boxes,
        graph.object_boxes,
        graph.mask,
        graph.frame_times,
        image_size=graph.image_size,
    )
    shifted = [attrs] + [
        torch.cat((attrs.new_zeros(attrs[:, :k].shape), attrs[:, :-k]), 1)[:, : attrs.shape[1]]
        for k in range(1, window)
    ]
    motion = torch.cat((single, *shifted), -1)
    video = torch.arange(len(graph))[:, None, None].expand_as(graph.mask)
    return single[selected], motion[selected], labels.float().argmax(-1)[selected], video[selected]


def _balanced(logits: Tensor, y: Tensor, k: int) -> tuple[float, list[float]]:
    pred = logits.argmax(-1)
    recall = [
        float((pred[y == c] == c).float().mean()) if bool((y == c).any()) else 0.0 for c in range(k)
    ]
    return sum(recall) / k, recall


def _fit_and_score(
    x: Tensor, y: Tensor, video: Tensor, x_test: Tensor, y_test: Tensor, k: int, *,
    hidden: int, steps: int, seed: int,
) -> tuple[float, list[float]]:  # fmt: skip
    mean, std = x.mean(0), x.std(0)
    std = torch.where(std > 1e-12, std, torch.ones_like(std))  # constant columns stay as they are
    x, x_test = (x - mean) / std, (x_test - mean) / std
    val = (video % 5) == 0
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Dropout(0.3), nn.Linear(x.shape[1], hidden), nn.ReLU(), nn.Linear(hidden, k)
        )
        opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=0.05)
        counts = torch.bincount(y[~val], minlength=k).float().clamp(min=1)
        weight = (1 / counts) / (1 / counts).mean()
        best, state = -1.0, None
        for step in range(steps):
            net.train()
            opt.zero_grad()
            F.cross_entropy(net(x[~val]), y[~val], weight=weight).backward()
            opt.step()
            if step % 20 == 19:
                net.eval()
                with torch.no_grad():
                    score = _balanced(net(x[val]), y[val], k)[0]
                if score > best:
                    best, state = score, {n: t.clone() for n, t in net.state_dict().items()}
        assert state is not None  # steps >= 20 is checked by the caller
        net.load_state_dict(state)
        net.eval()
        with torch.no_grad():
            return _balanced(net(x_test), y_test, k)


def motion_probe(
    train: VideoGraph | Sequence[VideoGraph],
    test: VideoGraph | Sequence[VideoGraph],
    predicates: Sequence[str] | None = None,
    *,
    window: int = 3,
    hidden: int = 64,
    steps: int = 600,
    seed: int = 0,
) -> dict[str, dict[str, object]]:
    """Balanced accuracy on motion-decided predicates of a single-frame and a motion-aware probe.

    Args:
        train: the training videos (a batch, or a sequence of videos such as a dataset).
        test: the videos to score on.
        predicates: the contacting predicates to tell apart; default
            [`MOTION_PREDICATES`][dsgg_layers.data.MOTION_PREDICATES].
        window: frame slots of motion attributes the motion-aware probe sees.
        hidden: hidden width of the probes' MLP.
        steps: full-batch training steps (>= 20).
        seed: seed of the probes' initialisation (the global RNG is left untouched).

    Returns:
        A dict with keys ``single_frame`` and ``with_motion``, each a dict with
        ``balanced_accuracy`` (float), ``recall`` (predicate to recall) and ``num_train`` and
        ``num_test`` (numbers of pairs).

    Raises:
        TypeError: ``predicates`` is a str, or ``hidden`` / ``steps`` are not ints.
        ValueError: a graph has no union features, ``steps < 20``, ``hidden < 1``, ``train`` or
            ``test`` is empty, or ``predicates`` has fewer than two distinct known predicates.

    Examples:
        >>> from dsgg_layers.data import SyntheticActionGenome, SyntheticConfig
        >>> cfg = SyntheticConfig(num_videos=40, num_test_videos=20)
        >>> result = motion_probe(SyntheticActionGenome(cfg), SyntheticActionGenome(cfg, "test"),
        ...                       steps=40)
        >>> motion = result["with_motion"]
        >>> sorted(result), sorted(motion["recall"])
        (['single_frame', 'with_motion'], ['carrying', 'drinking_from', 'holding', 'touching'])
    """
    from dsgg_layers.data.synthetic import MOTION_PREDICATES

    if isinstance(predicates, str):
        raise TypeError(f"predicates: expected a sequence of predicates, got {predicates!r}")
    predicates = tuple(MOTION_PREDICATES if predicates is None else predicates)
    if len(predicates) < 2 or len(set(predicates)) != len(predicates):
        raise ValueError(f"predicates: expected at least two distinct ones, got {predicates}")
    for p in predicates:
        if p not in PREDICATES:
            raise ValueError(f"predicates: {p!r} is not an Action Genome predicate")
    check_positive(window, "window")
    check_positive(hidden, "hidden")
    check_positive(steps, "steps")
    if steps < 20:
        raise ValueError(f"steps: expected at least 20, got {steps}")
    graphs = {}
    for name, value in (("train", train), ("test", test)):
        if not isinstance(value, VideoGraph) and len(value) == 0:
            raise ValueError(f"{name}: expected at least one video, got none")
        graphs[name] = value if isinstance(value, VideoGraph) else VideoGraph.collate(list(value))
    train_graph, test_graph = graphs["train"], graphs["test"]
    s_tr, m_tr, y_tr, v_tr = _probe_inputs(train_graph, predicates, window)
    s_te, m_te, y_te, _ = _probe_inputs(test_graph, predicates, window)
    out: dict[str, dict[str, object]] = {}
    for name, x, x_test in (("single_frame", s_tr, s_te), ("with_motion", m_tr, m_te)):
        acc, recall = _fit_and_score(
            x, y_tr, v_tr, x_test, y_te, len(predicates), hidden=hidden, steps=steps, seed=seed
        )
        out[name] = {
            "balanced_accuracy": acc,
            "recall": dict(zip(predicates, recall, strict=True)),
            "num_train": len(y_tr),
            "num_test": len(y_te),
        }
    return out
