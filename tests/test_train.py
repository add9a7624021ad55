"""hdlib.train: the one training engine (schedules, NaN guard, carry, stoppers, checkpoints).

Every model here is a handful of parameters, so each test runs in milliseconds; expected values
come from closed forms or from a hand-written replay of the same updates.
"""
import math

import pytest
import torch

from hdlib import train
from hdlib.train import Converged, EarlyStopping, Step, TimeBudget, Trainer, cosine_schedule


class Line(torch.nn.Module):
    """``y = w . x + b`` with parameters drawn from a local generator."""

    def __init__(self, seed=0, n=3):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.w = torch.nn.Parameter(torch.randn(n, generator=g))
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        return x @ self.w + self.b


def regression_step(model, batch=4):
    """A step function fitting ``y = x . (1, -2, 0.5)`` on data drawn from ``ctx.generator``."""
    target = torch.tensor([1.0, -2.0, 0.5])

    def step(ctx):
        x = torch.randn(batch, 3, generator=ctx.generator)
        loss = (model(x) - x @ target).square().mean()
        return Step(loss, {"step_seen": ctx.step})
    return step


def constant_loss_step(model, values):
    """A step function whose loss takes the value ``values[step]`` (with a zero gradient)."""
    def step(ctx):
        return Step(sum((p * 0).sum() for p in model.parameters()) + values[ctx.step])
    return step


def quiet(model, step_fn, **kwargs):
    optimizer = kwargs.pop("optimizer", None) or torch.optim.SGD(model.parameters(), lr=0.1)
    return Trainer(model, optimizer, step_fn, progress=False, **kwargs)


# ---------------------------------------------------------------------------- schedules
def closed_form_lr(t, lr0, total, eta_min, warm):
    if t < warm:
        start = 1 / (warm + 1)
        return lr0 * (start + (1 - start) * t / warm)
    return eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * (t - warm) / (total - warm))) / 2


@pytest.mark.parametrize("warm", [0, 1, 4])
def test_cosine_schedule_follows_its_closed_form(warm):
    model = Line()
    total, lr0, eta_min = 12, 0.2, 0.02
    optimizer = torch.optim.SGD(model.parameters(), lr=lr0)
    trainer = quiet(model, regression_step(model), optimizer=optimizer,
                    scheduler=cosine_schedule(optimizer, total, eta_min, warmup_steps=warm))
    trainer.run(total)
    expected = [closed_form_lr(t, lr0, total, eta_min, warm) for t in range(total)]
    assert trainer.history["lr"] == pytest.approx(expected, rel=1e-6)
    assert trainer.learning_rate == pytest.approx(eta_min, rel=1e-6)  # after the last step


def test_cosine_schedule_rejects_a_warmup_as_long_as_the_run():
    optimizer = torch.optim.SGD(Line().parameters(), lr=0.1)
    with pytest.raises(ValueError, match="warmup_steps"):
        cosine_schedule(optimizer, 5, warmup_steps=5)
    with pytest.raises(ValueError, match="total_steps"):
        cosine_schedule(optimizer, 0)


def test_schedule_every_steps_the_scheduler_once_per_period():
    model = Line()
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    trainer = quiet(model, regression_step(model), optimizer=optimizer, scheduler=scheduler,
                    schedule_every=3)
    trainer.run(7)
    assert trainer.history["lr"] == [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25]


def test_plateau_scheduler_is_stepped_with_the_evaluated_metric():
    """The training loss keeps falling; the evaluated metric stalls after two evaluations, so
    ReduceLROnPlateau (patience 1) halves the rate after every second stalled evaluation."""
    model = Line()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    metric = iter([3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0])
    trainer = quiet(model, constant_loss_step(model, [10.0 - t for t in range(8)]),
                    optimizer=optimizer, scheduler=scheduler, plateau_metric="val",
                    evaluate=lambda: {"val": next(metric)})
    trainer.run(7)
    # evaluations 1-2 improve; 3 is bad (1), 4 bad (2 > patience) -> halve; 5 (1); 6 -> halve
    assert trainer.history["lr"] == pytest.approx([0.1] * 4 + [0.05] * 2 + [0.025])


def test_plateau_scheduler_counts_each_evaluation_once():
    """Evaluating every second step: the scheduler must see each evaluation once, not once per
    step (which would count every stalled evaluation twice)."""
    model = Line()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=0.5, patience=1)
    metric = iter([2.0, 2.0, 2.0, 2.0])
    trainer = quiet(model, constant_loss_step(model, [1.0] * 8), optimizer=optimizer,
                    scheduler=scheduler, plateau_metric="val", eval_every=2,
                    evaluate=lambda: {"val": next(metric)})
    trainer.run(8)
    # evaluations at steps 2, 4, 6, 8: best, bad 1, bad 2 -> halve (from step 7 on), bad 1
    assert trainer.history["lr"] == pytest.approx([0.1] * 6 + [0.05] * 2)


def test_plateau_metric_that_nobody_reports_is_an_error():
    model = Line()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    trainer = quiet(model, regression_step(model), optimizer=optimizer, scheduler=scheduler,
                    plateau_metric="nope")
    with pytest.raises(KeyError, match="nope"):
        trainer.run(1)


# ---------------------------------------------------------------------------- NaN guard
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_non_finite_loss_stops_before_any_update(bad):
    model = Line()
    losses = [1.0, 2.0, bad]

    def step(ctx):
        return Step((model.w.square().sum() + model.b) * 0 + model.w.sum() * losses[ctx.step])

    trainer = quiet(model, step, optimizer=torch.optim.SGD(model.parameters(), lr=0.25))
    trainer.run(2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(FloatingPointError, match=r"at step 2 \(learning rate 0\.25\)"):
        trainer.run(3)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    assert trainer.step == 2 and len(trainer.history["loss"]) == 2


def test_non_finite_gradient_stops_before_any_update():
    """A finite loss whose gradient is not finite (sqrt at 0) must not reach the weights."""
    model = Line()
    with torch.no_grad():
        model.w.zero_()

    def step(ctx):
        return Step(model.w.abs().sqrt().sum())

    trainer = quiet(model, step, grad_clip=1.0)
    with pytest.raises(FloatingPointError, match="gradient .* at step 0"):
        trainer.run(1)
    assert torch.equal(model.w, torch.zeros(3))


def test_divergence_rolls_back_halves_the_rate_and_goes_on():
    """Gradient descent on w^2 with rate 1.5 maps w -> -2w: 1, -2, 4, -8, 16. The loss is
    made non-finite once |w| > 10, at step 4; the last good state is w = -8, before step 3's
    update, and from there the halved rate 0.75 maps w -> -0.5 w, which converges."""
    model = Line(n=1)
    with torch.no_grad():
        model.w.fill_(1.0)

    def step(ctx):
        w = model.w.sum()
        return Step(w.square() + (torch.inf if w.abs() > 10 else 0.0))

    trainer = quiet(model, step, optimizer=torch.optim.SGD([model.w], lr=1.5), max_rollbacks=2)
    trainer.run(30)
    assert [(e["step"], e["learning_rate"]) for e in trainer.rollbacks] == [(3, 0.75)]
    assert trainer.history["lr"] == [1.5] * 3 + [0.75] * 27
    assert trainer.history["step"] == list(range(1, 31))
    expected = -8.0 * (-0.5) ** 27
    assert model.w.item() == pytest.approx(expected, abs=1e-9)


def test_rollbacks_run_out():
    model = Line(n=1)

    def step(ctx):
        return Step(model.w.sum() * (math.nan if ctx.step >= 2 else 1.0))

    trainer = quiet(model, step, max_rollbacks=3)
    with pytest.raises(FloatingPointError, match="after 3 rollbacks"):
        trainer.run(10)
    assert [e["learning_rate"] for e in trainer.rollbacks] == pytest.approx([0.05, 0.025,
                                                                            0.0125])


def test_gradient_clipping_bounds_the_update():
    model = Line()
    start = model.w.detach().clone()

    def step(ctx):
        return Step(100.0 * model.w.sum())  # gradient (100, 100, 100), norm 100 sqrt(3)

    trainer = quiet(model, step, optimizer=torch.optim.SGD([model.w], lr=1.0), grad_clip=0.5)
    trainer.run(1)
    assert trainer.history["grad_norm"] == [pytest.approx(100 * math.sqrt(3))]
    torch.testing.assert_close(start - model.w.detach(), torch.full((3,), 0.5 / math.sqrt(3)))


# ---------------------------------------------------------------------------- carry
class TinyRNN(torch.nn.Module):
    """``h[t] = tanh(W h[t-1] + u x[t])``; the read-out is ``h[t, 0]``."""

    def __init__(self, seed=0, n=4):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = torch.nn.Parameter(0.5 * torch.randn(n, n, generator=g))
        self.u = torch.nn.Parameter(torch.randn(n, generator=g))

    def forward(self, x, h):
        states = []
        for x_t in x.unbind(1):
            h = torch.tanh(h @ self.W.T + x_t[:, None] * self.u)
            states.append(h)
        return torch.stack(states, 1), h


def segment_step(model, segment=5, batch=2):
    """Truncated backpropagation through time: each step trains on the next ``segment`` inputs
    of one long sequence, starting from the state the previous step ended in."""
    def step(ctx):
        h = ctx.carry if ctx.carry is not None else torch.zeros(batch, model.W.shape[0])
        x = torch.randn(batch, segment, generator=ctx.generator)
        states, h = model(x, h)
        return Step((states[..., 0] - x).square().mean(), carry=h)
    return step


def test_carry_is_detached_between_segments():
    model = TinyRNN()
    seen = []
    inner = segment_step(model)

    def step(ctx):
        seen.append(ctx.carry)
        return inner(ctx)

    trainer = quiet(model, step)
    trainer.run(4)  # a carried graph would fail: "backward through the graph a second time"
    assert seen[0] is None
    assert all(c.grad_fn is None and not c.requires_grad for c in seen[1:])
    assert trainer.carry.grad_fn is None


def test_gradient_of_a_segment_stops_at_its_start():
    """The gradient of step 1 equals the gradient of the same segment started from a constant
    state: nothing flows back into step 0's graph."""
    model = TinyRNN()
    grads = []

    class Grab:
        def on_backward(self, trainer):
            grads.append({n: p.grad.clone() for n, p in model.named_parameters()})

    trainer = quiet(model, segment_step(model), callbacks=[Grab()],
                    optimizer=torch.optim.SGD(model.parameters(), lr=0.0))  # weights stay put
    trainer.run(1)
    carry = trainer.carry.clone()
    trainer.run(2)
    reference = TinyRNN()
    x = torch.randn(2, 5, generator=trainer.generator(1))
    states, _ = reference(x, carry)
    loss = (states[..., 0] - x).square().mean()
    expected = torch.autograd.grad(loss, [reference.W, reference.u])
    torch.testing.assert_close(grads[1]["W"], expected[0])
    torch.testing.assert_close(grads[1]["u"], expected[1])


def test_nested_carry_is_detached():
    x = torch.ones(2, requires_grad=True) * 3
    carried = train.detach({"a": (x, [x * 2]), "n": 4})
    assert carried["n"] == 4 and isinstance(carried["a"], tuple)
    assert not carried["a"][0].requires_grad and not carried["a"][1][0].requires_grad


def test_curriculum_is_chosen_by_the_step():
    model = TinyRNN()
    lengths = [3, 3, 6, 6, 6]

    def step(ctx):
        x = torch.randn(2, lengths[ctx.step], generator=ctx.generator)
        states, _ = model(x, torch.zeros(2, 4))
        return Step(states.square().mean(), {"seq_len": x.shape[1]})

    trainer = quiet(model, step)
    trainer.run(2)
    trainer.run(5)  # a second call continues the curriculum where the first stopped
    assert trainer.history["seq_len"] == [3, 3, 6, 6, 6]
    assert trainer.history["step"] == [1, 2, 3, 4, 5]


def test_step_generators_depend_on_seed_and_step_only():
    a = quiet(Line(), lambda ctx: None, seed=3)
    b = quiet(Line(seed=5), lambda ctx: None, seed=3)
    draw = lambda g: torch.rand(4, generator=g)  # noqa: E731
    assert torch.equal(draw(a.generator(7)), draw(b.generator(7)))
    assert not torch.equal(draw(a.generator(7)), draw(a.generator(8)))
    assert not torch.equal(draw(a.generator(7)), draw(a.generator(7, stream=1)))
    assert not torch.equal(draw(a.generator(7)), draw(quiet(Line(), None, seed=4).generator(7)))


# ---------------------------------------------------------------------------- stoppers
def test_early_stopping_fires_after_patience_stalled_evaluations():
    model = Line()
    metric = iter([5.0, 4.0, 4.5, 4.0, 4.2, 3.0, 9.0])
    trainer = quiet(model, constant_loss_step(model, [1.0] * 20), eval_every=2,
                    evaluate=lambda: {"val_loss": next(metric)},
                    stoppers=[EarlyStopping("val_loss", patience=3)])
    trainer.run(20)
    # evaluations at steps 2..: 5 best, 4 best, 4.5 bad, 4.0 bad (not better), 4.2 bad -> stop
    assert trainer.step == 10
    assert trainer.stop_reason == "val_loss did not improve for 3 evaluations"


def test_early_stopping_in_max_mode_with_min_delta():
    stopper = EarlyStopping("acc", patience=2, mode="max", min_delta=0.1)

    class Fake:
        step = 0
        evaluations = {"step": [], "acc": []}

    fake, reasons = Fake(), []
    for value in [0.5, 0.55, 0.7, 0.75, 0.79]:
        fake.step += 1
        fake.evaluations["step"].append(fake.step)
        fake.evaluations["acc"].append(value)
        reasons.append(stopper(fake))
    # 0.5 best; 0.55 not > 0.6: bad 1; 0.7 best; 0.75 bad 1; 0.79 bad 2 -> stop
    assert reasons[:4] == [None] * 4 and "acc did not improve for 2" in reasons[4]
    with pytest.raises(ValueError, match="mode"):
        EarlyStopping(mode="up")


def test_converged_stops_when_the_loss_stops_moving():
    model = Line()
    values = [5.0, 4.0, 3.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0]
    trainer = quiet(model, constant_loss_step(model, values),
                    stoppers=[Converged(["loss"], rtol=1e-3, window=3)])
    trainer.run(10)
    # the last 4 losses are all 2.0 first after step 7
    assert trainer.step == 7
    assert trainer.stop_reason == "loss changed by less than 0.001 over 3 steps"


def test_converged_watches_every_key():
    model = Line()

    def step(ctx):
        return Step((model.w * 0).sum() + 1.0, {"other": float(ctx.step)})

    trainer = quiet(model, step, stoppers=[Converged(["loss", "other"], window=2)])
    trainer.run(6)
    assert trainer.step == 6 and trainer.stop_reason == "6 steps"


def test_time_budget_stops_on_a_fake_clock(monkeypatch):
    clock = {"now": 100.0}
    monkeypatch.setattr(train.time, "perf_counter", lambda: clock["now"])
    model = Line()
    inner = constant_loss_step(model, [1.0] * 10)

    def step(ctx):
        clock["now"] += 1.0  # every step takes one second
        return inner(ctx)

    trainer = quiet(model, step, stoppers=[TimeBudget(2.5)])
    trainer.run(10)
    assert trainer.step == 3 and trainer.elapsed == 3.0
    assert trainer.stop_reason == "time budget of 2.5 s used"
    trainer.stoppers = [TimeBudget(4.5)]
    trainer.run(10)  # the clock keeps counting from the time already used
    assert trainer.step == 5 and trainer.elapsed == 5.0


def test_first_stopper_to_fire_gives_the_reason(monkeypatch):
    monkeypatch.setattr(train.time, "perf_counter", lambda: 0.0)
    model = Line()
    trainer = quiet(model, constant_loss_step(model, [1.0] * 10),
                    stoppers=[TimeBudget(100.0), Converged(["loss"], window=1)])
    trainer.run(10)
    assert trainer.step == 2 and trainer.stop_reason.startswith("loss changed")


# ---------------------------------------------------------------------------- callbacks
def test_callbacks_are_called_in_order():
    events = []

    class Recorder:
        def __init__(self, name):
            self.name = name

        def on_backward(self, trainer):
            events.append((self.name, "backward", trainer.step))

        def on_evaluate(self, trainer):
            events.append((self.name, "evaluate", trainer.step))

        def on_step_end(self, trainer):
            events.append((self.name, "end", trainer.step))

    model = Line()

    def evaluate():
        events.append(("-", "evaluate()", None))
        return {"val": 1.0}

    trainer = quiet(model, regression_step(model), evaluate=evaluate, eval_every=2,
                    after_step=lambda m: events.append(("-", "after_step", m is model)),
                    callbacks=[Recorder("A"), Recorder("B")])
    trainer.run(2)
    assert events == [
        ("A", "backward", 0), ("B", "backward", 0), ("-", "after_step", True),
        ("A", "end", 1), ("B", "end", 1),
        ("A", "backward", 1), ("B", "backward", 1), ("-", "after_step", True),
        ("-", "evaluate()", None), ("A", "evaluate", 2), ("B", "evaluate", 2),
        ("A", "end", 2), ("B", "end", 2)]


def test_evaluation_runs_in_eval_mode_without_gradients():
    model = Line()
    seen = []

    def evaluate():
        seen.append((model.training, torch.is_grad_enabled()))
        return {"val": 1.0}

    quiet(model, regression_step(model), evaluate=evaluate).run(1)
    assert seen == [(False, False)] and model.training
    bad = quiet(model, regression_step(model), evaluate=lambda: {"val": math.nan})
    with pytest.raises(FloatingPointError, match="val became nan at step 1"):
        bad.run(1)


# ---------------------------------------------------------------------------- checkpoints
class LossSum:
    """A stateful callback: the running sum of the losses, saved in checkpoints."""

    def __init__(self):
        self.total, self.seen = 0.0, []

    def on_step_end(self, trainer):
        self.total += trainer.history["loss"][-1]
        self.seen.append(trainer.step)

    def state_dict(self):
        return {"total": self.total, "seen": list(self.seen)}

    def load_state_dict(self, state):
        self.total, self.seen = state["total"], list(state["seen"])


def rnn_trainer(seed, checkpoint_path=None):
    """A carried RNN with every kind of state: Adam moments, a cosine schedule with warm-up,
    evaluations, an early stopper and a stateful callback."""
    model = TinyRNN(seed=seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    val = torch.randn(3, 6, generator=torch.Generator().manual_seed(99))

    def evaluate():
        states, _ = model(val, torch.zeros(3, 4))
        return {"val_loss": (states[..., 0] - val).square().mean().item()}

    callback = LossSum()
    trainer = Trainer(model, optimizer, segment_step(model),
                      scheduler=cosine_schedule(optimizer, 10, 1e-3, warmup_steps=2),
                      evaluate=evaluate, eval_every=2, grad_clip=1.0,
                      stoppers=[EarlyStopping("val_loss", patience=50)], callbacks=[callback],
                      seed=7, checkpoint_path=checkpoint_path, checkpoint_every=3,
                      progress=False)
    return trainer, callback


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path):
    whole, whole_sum = rnn_trainer(seed=0)
    whole.run(10)

    path = tmp_path / "ck.pt"
    first, _ = rnn_trainer(seed=0, checkpoint_path=path)
    first.run(7)  # checkpoints at steps 3 and 6; the "crash" loses step 7
    resumed, resumed_sum = rnn_trainer(seed=1, checkpoint_path=path)  # other initial weights
    assert resumed.resume(path) == 6
    assert resumed.stoppers[0].best == min(first.evaluations["val_loss"][:3])
    resumed.run(10)

    assert resumed.history == whole.history
    assert resumed.evaluations == whole.evaluations
    for key, value in whole.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[key], value), key
    assert torch.equal(resumed.carry, whole.carry)
    assert resumed_sum.state_dict() == whole_sum.state_dict()
    assert resumed.stoppers[0].state_dict() == whole.stoppers[0].state_dict()
    assert resumed.learning_rate == whole.learning_rate


def test_resume_after_an_early_stop_keeps_the_stoppers_count(tmp_path):
    """The checkpoint written at the step a stopper fires already holds that stopper's count."""
    path = tmp_path / "ck.pt"
    model = Line()
    trainer = quiet(model, constant_loss_step(model, [1.0] * 20), evaluate=lambda: {"v": 1.0},
                    stoppers=[EarlyStopping("v", patience=2)], checkpoint_path=path,
                    checkpoint_every=1)
    trainer.run(20)
    assert trainer.step == 3
    state = train.io.load_torch(path, train.CHECKPOINT_FORMAT)
    assert state["step"] == 3 and state["stoppers"] == [{"best": 1.0, "bad": 2}]


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    model = Line()
    trainer = quiet(model, regression_step(model))
    path = tmp_path / "ck.pt"
    trainer.run(1)
    trainer.save(path)
    before = path.read_bytes()
    trainer.run(2)

    def crash(obj, f, *args, **kwargs):
        with open(f, "wb") as handle:
            handle.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        trainer.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]
    monkeypatch.undo()
    fresh = quiet(Line(seed=4), regression_step(model))
    assert fresh.resume(path) == 1


def test_resume_rejects_foreign_and_mismatched_files(tmp_path):
    trainer = quiet(Line(), lambda ctx: None)
    foreign = tmp_path / "foreign.pt"
    torch.save({"format": "something-else"}, foreign)
    with pytest.raises(ValueError, match="not a 'hdlib-train-2' checkpoint"):
        trainer.resume(foreign)
    other = quiet(Line(n=5), lambda ctx: None)
    other.save(tmp_path / "other.pt")
    with pytest.raises(ValueError, match="does not match the model"):
        trainer.resume(tmp_path / "other.pt")


def test_evaluation_metrics_are_stored_as_floats(tmp_path):
    """A metric returned as a numpy or tensor scalar is recorded as a float, so that the
    checkpoint loads with ``weights_only=True``."""
    import numpy as np

    model = Line()
    trainer = quiet(model, regression_step(model),
                    evaluate=lambda: {"a": np.float64(0.5), "b": torch.tensor(0.25)})
    trainer.run(1)
    assert trainer.evaluations == {"step": [1], "a": [0.5], "b": [0.25]}
    assert all(type(v) is float for v in trainer.evaluations["a"] + trainer.evaluations["b"])
    trainer.save(tmp_path / "ck.pt")
    assert quiet(Line(), regression_step(model)).resume(tmp_path / "ck.pt") == 1


@pytest.mark.parametrize("kwargs, name", [
    ({"schedule_every": 0}, "schedule_every"), ({"eval_every": -1}, "eval_every"),
    ({"grad_clip": 0.0}, "grad_clip"), ({"seed": -1}, "seed"),
    ({"checkpoint_every": 0}, "checkpoint_every"),
])
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        quiet(Line(), lambda ctx: None, **kwargs)


def test_an_optimizer_without_parameters_is_an_error():
    with pytest.raises(ValueError, match="no parameters"):
        Trainer(Line(), torch.optim.SGD([{"params": []}], lr=0.1), lambda ctx: None)


def test_a_rollback_during_warm_up_stays_halved_after_it():
    """A warm-up + cosine schedule (a SequentialLR) keeps the halved rate once the cosine phase
    starts: every later rate is half of what the same schedule gives without the rollback."""
    from hdlib.train import cosine_schedule

    def run(bad_step):
        model = Line(n=1)
        seen = []

        def step(ctx):
            bad = ctx.step == bad_step and not seen  # diverges once
            seen.extend([1] if bad else [])
            return Step(model.w.square().sum() * (math.nan if bad else 1.0))

        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        trainer = quiet(model, step, optimizer=optimizer, max_rollbacks=1,
                        scheduler=cosine_schedule(optimizer, 20, warmup_steps=5))
        trainer.run(20)
        return trainer.history["lr"]

    clean, rolled = run(-1), run(3)

    # the rollback at step 3 goes back to the state before step 2's update, at half the rate
    assert rolled[:2] == pytest.approx(clean[:2])
    assert rolled[2:] == pytest.approx([lr / 2 for lr in clean[2:]])
