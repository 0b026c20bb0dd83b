"""The generic training loop: per-term history, atomic checkpoints, exact resume, seeds."""

import os

import pytest
import torch

from csmlab.train import History, load_checkpoint, save_checkpoint, seed_everything, train


def _problem(seed=0):
    """A tiny least-squares fit with two named terms and a batch that depends on the iteration."""
    seed_everything(seed)
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    w_true = torch.tensor([[1.0, -2.0, 0.5]])

    def batch_fn(it):
        g = torch.Generator().manual_seed(1000 + it)
        x = torch.randn(16, 3, generator=g)
        return x, x @ w_true.T + 0.3

    def loss_fn(m, batch, it):
        x, y = batch
        # torch.rand here makes the loss depend on the global RNG, so resume must restore it.
        noise = 1e-3 * torch.rand(())
        return ({"fit": ((m(x) - y) ** 2).mean(), "l2": 1e-3 * (m.weight ** 2).sum() + noise},
                {"weight_norm": m.weight.norm()})

    return model, opt, loss_fn, batch_fn


def test_history_logs_every_term_and_the_total():
    model, opt, loss_fn, batch_fn = _problem()
    hist = train(model, opt, loss_fn, batch_fn, 200, progress=False)
    assert set(hist.names) == {"total", "fit", "l2", "weight_norm"}
    assert len(hist["fit"]) == 200 and hist.steps("fit") == list(range(200))
    assert hist["total"][0] == pytest.approx(hist["fit"][0] + hist["l2"][0], rel=1e-6)
    assert hist.mean_last("fit", 10) < 0.01 * hist["fit"][0]
    steps, smooth = hist.smoothed("fit", 5)
    assert len(smooth) == 200 and smooth[4] == pytest.approx(sum(hist["fit"][:5]) / 5)
    with pytest.raises(KeyError, match="fit"):
        hist["nope"]


def test_history_round_trips_through_state_dict():
    h = History()
    h.log(0, {"a": 1.0, "b": torch.tensor(2.0)})
    h.log(5, {"a": 3.0})
    h2 = History.from_state_dict(h.state_dict())
    assert h2["a"] == [1.0, 3.0] and h2.steps("a") == [0, 5] and h2["b"] == [2.0]
    with pytest.raises(ValueError, match="state"):
        History().load_state_dict({"values": {}})


def test_resume_matches_an_uninterrupted_run(tmp_path):
    model, opt, loss_fn, batch_fn = _problem()
    full = train(model, opt, loss_fn, batch_fn, 30, progress=False)
    w_full = model.weight.detach().clone()

    ckpt = tmp_path / "run.pt"
    model, opt, loss_fn, batch_fn = _problem()
    train(model, opt, loss_fn, batch_fn, 12, checkpoint_path=ckpt, checkpoint_every=5, progress=False)
    assert load_checkpoint(ckpt)["iteration"] == 12
    # A fresh process would build new objects with a different RNG state: resume must restore everything.
    model, opt, loss_fn, batch_fn = _problem(seed=123)
    resumed = train(model, opt, loss_fn, batch_fn, 30, checkpoint_path=ckpt, progress=False)
    assert torch.allclose(model.weight, w_full, atol=1e-6)
    assert resumed.steps("fit") == list(range(30))
    assert resumed["total"] == pytest.approx(full["total"], rel=1e-5)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint(path, {"x": torch.ones(2)})

    def broken_save(obj, f):
        f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"x": torch.zeros(2)})
    monkeypatch.undo()
    assert torch.equal(load_checkpoint(path)["x"], torch.ones(2))  # the old file is untouched
    assert os.listdir(tmp_path) == ["c.pt"]  # and no temp file is left behind


def test_non_finite_loss_names_the_term():
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(FloatingPointError, match="bad=nan"):
        train(model, opt, lambda m, b, it: {"ok": m(b).sum(), "bad": torch.tensor(float("nan"))},
              lambda it: torch.ones(1, 1), 3, progress=False)


def test_callback_runs_on_schedule_and_at_the_end():
    model, opt, loss_fn, batch_fn = _problem()
    calls = []
    train(model, opt, loss_fn, batch_fn, 10, progress=False, callback=lambda it, m, h: calls.append(it),
          callback_every=4)
    assert calls == [4, 8, 10]


def test_seed_everything_repeats_and_validates():
    seed_everything(7)
    a = torch.rand(3)
    g = seed_everything(7)
    assert torch.equal(a, torch.rand(3))
    assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=torch.Generator().manual_seed(7)))
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_bad_inputs_raise_value_errors(tmp_path):
    model = torch.nn.Linear(1, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="n_iters"):
        train(model, opt, lambda m, b, it: {"a": m(b).sum()}, lambda it: torch.ones(1, 1), -1)
    with pytest.raises(ValueError, match="scalar"):
        train(model, opt, lambda m, b, it: {"a": m(b).expand(1, 2)}, lambda it: torch.ones(1, 1), 1,
              progress=False)
    with pytest.raises(ValueError, match="state must be a dict"):
        save_checkpoint(tmp_path / "x.pt", [1, 2])
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
