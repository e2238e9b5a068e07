"""Learning-rate schedules (fastnn.optim.lr_scheduler): each against its closed formula over 30
epochs, against torch.optim.lr_scheduler when torch is importable, with every optimizer class and
with parameter groups of different learning rates; state_dict resume; validation."""
import math

import numpy as np
import pytest

import fastnn as fnn
from fastnn.layers import Parameter
from fastnn.optim import lr_scheduler as sched

EPOCHS = 30
BASE_LRS = (0.1, 0.03)  # two parameter groups with different learning rates


def two_group_optimizer(cls=fnn.optim.SGD, lrs=BASE_LRS, **options):
    params = [Parameter(np.zeros(3), "a"), Parameter(np.zeros(3), "b")]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, lrs)]
    return cls(groups, lr=0.5, **options)


def lr_sequence(scheduler, epochs=EPOCHS):
    """get_last_lr() at epochs 0 .. epochs-1, stepping the scheduler after each."""
    lrs = []
    for _ in range(epochs):
        lrs.append(scheduler.get_last_lr())
        scheduler.optimizer.step()
        scheduler.step()
    return np.array(lrs)


def cosine(lr0, t, T, eta_min=0.0):
    return eta_min + (lr0 - eta_min) * (1 + math.cos(math.pi * t / T)) / 2


# name -> (fastnn scheduler factory, closed formula lr(lr0, t), torch factory or None)
SCHEDULES = {
    "step": (lambda o: sched.StepLR(o, step_size=7, gamma=0.5),
             lambda lr0, t: lr0 * 0.5 ** (t // 7),
             lambda T, o: T.StepLR(o, step_size=7, gamma=0.5)),
    "step_default_gamma": (lambda o: sched.StepLR(o, 4),
                           lambda lr0, t: lr0 * 0.1 ** (t // 4),
                           lambda T, o: T.StepLR(o, 4)),
    "exponential": (lambda o: sched.ExponentialLR(o, gamma=0.9),
                    lambda lr0, t: lr0 * 0.9 ** t,
                    lambda T, o: T.ExponentialLR(o, gamma=0.9)),
    "exponential_notes": (lambda o: sched.ExponentialLR(o, gamma=math.exp(-0.2)),
                          lambda lr0, t: lr0 * math.exp(-0.2 * t),  # the notes' lr0 e^{-kt}
                          None),
    "inverse_time": (lambda o: sched.InverseTimeLR(o, decay=0.5),
                     lambda lr0, t: lr0 / (1 + 0.5 * t),
                     lambda T, o: T.LambdaLR(o, lambda t: 1 / (1 + 0.5 * t))),
    "cosine": (lambda o: sched.CosineAnnealingLR(o, T_max=10, eta_min=1e-3),
               lambda lr0, t: cosine(lr0, t, 10, 1e-3),  # 30 epochs: past T_max, as torch
               lambda T, o: T.CosineAnnealingLR(o, T_max=10, eta_min=1e-3)),
    "cosine_full": (lambda o: sched.CosineAnnealingLR(o, T_max=EPOCHS),
                    lambda lr0, t: cosine(lr0, t, EPOCHS),
                    lambda T, o: T.CosineAnnealingLR(o, T_max=EPOCHS)),
    "linear_warmup": (lambda o: sched.LinearLR(o, start_factor=0.25, total_iters=8),
                      lambda lr0, t: lr0 * (0.25 + 0.75 * min(t, 8) / 8),
                      lambda T, o: T.LinearLR(o, start_factor=0.25, total_iters=8)),
    "linear_default": (lambda o: sched.LinearLR(o),
                       lambda lr0, t: lr0 * (1 / 3 + (2 / 3) * min(t, 5) / 5),
                       lambda T, o: T.LinearLR(o)),
    "linear_decay": (lambda o: sched.LinearLR(o, start_factor=1.0, end_factor=0.1,
                                              total_iters=12),
                     lambda lr0, t: lr0 * (1.0 - 0.9 * min(t, 12) / 12),
                     lambda T, o: T.LinearLR(o, start_factor=1.0, end_factor=0.1,
                                             total_iters=12)),
    "lambda": (lambda o: sched.LambdaLR(o, lambda t: 0.95 ** t * (1 + t % 3)),
               lambda lr0, t: lr0 * 0.95 ** t * (1 + t % 3),
               lambda T, o: T.LambdaLR(o, lambda t: 0.95 ** t * (1 + t % 3))),
    "warmup_then_cosine": (
        lambda o: sched.SequentialLR(o, [sched.LinearLR(o, start_factor=0.1, total_iters=5),
                                         sched.CosineAnnealingLR(o, T_max=25)], milestones=[5]),
        lambda lr0, t: (lr0 * (0.1 + 0.9 * t / 5) if t < 5 else cosine(lr0, t - 5, 25)),
        lambda T, o: T.SequentialLR(o, [T.LinearLR(o, start_factor=0.1, total_iters=5),
                                        T.CosineAnnealingLR(o, T_max=25)], milestones=[5])),
    "three_phases": (
        lambda o: sched.SequentialLR(o, [sched.LinearLR(o, start_factor=0.5, total_iters=4),
                                         sched.StepLR(o, 3, gamma=0.5),
                                         sched.ExponentialLR(o, gamma=0.8)],
                                     milestones=[4, 13]),
        lambda lr0, t: (lr0 * (0.5 + 0.5 * t / 4) if t < 4 else
                        lr0 * 0.5 ** ((t - 4) // 3) if t < 13 else lr0 * 0.8 ** (t - 13)),
        lambda T, o: T.SequentialLR(o, [T.LinearLR(o, start_factor=0.5, total_iters=4),
                                        T.StepLR(o, 3, gamma=0.5), T.ExponentialLR(o, gamma=0.8)],
                                    milestones=[4, 13])),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_follows_its_closed_formula(name):
    make, formula, _ = SCHEDULES[name]
    opt = two_group_optimizer()
    got = lr_sequence(make(opt))
    want = np.array([[formula(lr0, t) for lr0 in BASE_LRS] for t in range(EPOCHS)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)
    assert len(np.unique(got[:, 0])) > 3  # the schedule changed the rate
    if name != "cosine":  # every schedule but the one with eta_min scales lr0
        np.testing.assert_allclose(got[:, 1] / got[:, 0], BASE_LRS[1] / BASE_LRS[0], rtol=1e-12)
    # The groups' lr is what get_last_lr reports, and initial_lr is kept
    assert [g["initial_lr"] for g in opt.param_groups] == list(BASE_LRS)


@pytest.mark.parametrize("name", sorted(n for n, s in SCHEDULES.items() if s[2] is not None))
def test_schedule_matches_torch(name):
    torch = pytest.importorskip("torch")
    make, _, make_torch = SCHEDULES[name]
    tparams = [torch.nn.Parameter(torch.zeros(3)) for _ in BASE_LRS]
    topt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(tparams, BASE_LRS)],
                           lr=0.5)
    tsched = make_torch(torch.optim.lr_scheduler, topt)
    want = []
    for _ in range(EPOCHS):
        want.append(tsched.get_last_lr())
        topt.step()
        tsched.step()
    got = lr_sequence(make(two_group_optimizer()))
    np.testing.assert_allclose(got, np.array(want), rtol=1e-12, atol=1e-15)


OPTIMIZERS = {
    "SGD": dict(momentum=0.9),
    "Adagrad": dict(lr_decay=0.01),
    "RMSprop": dict(momentum=0.5),
    "Adam": dict(),
    "AdamW": dict(weight_decay=0.1),
}


@pytest.mark.parametrize("schedule", ["step", "cosine", "warmup_then_cosine", "inverse_time"])
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_schedules_drive_every_optimizer_like_torch(optimizer, schedule):
    """The optimizer reads the scheduled lr of each group: parameters after 12 epochs of one step
    each equal torch's with the same optimizer and schedule."""
    torch = pytest.importorskip("torch")
    make, _, make_torch = SCHEDULES[schedule]
    rng = np.random.default_rng(4)
    w0 = [rng.standard_normal(4), rng.standard_normal(4)]
    grads = [[rng.standard_normal(4) for _ in w0] for _ in range(12)]
    params = [Parameter(w.copy(), n) for w, n in zip(w0, "ab")]
    opt = getattr(fnn.optim, optimizer)(
        [{"params": [p], "lr": lr} for p, lr in zip(params, BASE_LRS)], **OPTIMIZERS[optimizer])
    scheduler = make(opt)
    tparams = [torch.nn.Parameter(torch.from_numpy(w.copy())) for w in w0]
    topt = getattr(torch.optim, optimizer)(
        [{"params": [p], "lr": lr} for p, lr in zip(tparams, BASE_LRS)], **OPTIMIZERS[optimizer])
    tsched = make_torch(torch.optim.lr_scheduler, topt)
    for step_grads in grads:
        for p, tp, g in zip(params, tparams, step_grads):
            p.grad[...] = g
            tp.grad = torch.from_numpy(g.copy())
        opt.step()
        topt.step()
        scheduler.step()
        tsched.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12)
    # and the run differs from one at the constant initial rates
    plain = [Parameter(w.copy(), n) for w, n in zip(w0, "ab")]
    plain_opt = getattr(fnn.optim, optimizer)(
        [{"params": [p], "lr": lr} for p, lr in zip(plain, BASE_LRS)], **OPTIMIZERS[optimizer])
    for step_grads in grads:
        for p, g in zip(plain, step_grads):
            p.grad[...] = g
        plain_opt.step()
    assert not np.allclose(plain[0].data, params[0].data, rtol=1e-6, atol=0)


@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_schedule_sets_each_group_from_its_own_initial_lr(optimizer):
    opt = two_group_optimizer(getattr(fnn.optim, optimizer), lrs=(0.2, 0.005),
                              **OPTIMIZERS[optimizer])
    scheduler = sched.ExponentialLR(opt, gamma=0.5)
    for t in range(1, 6):
        opt.step()
        scheduler.step()
        assert scheduler.get_last_lr() == pytest.approx([0.2 * 0.5 ** t, 0.005 * 0.5 ** t],
                                                        rel=1e-14)
        assert [g["lr"] for g in opt.param_groups] == scheduler.get_last_lr()


# ------------------------------------------------------------------------------------------------
# state_dict / load_state_dict resume


@pytest.mark.parametrize("name", ["step", "exponential", "cosine", "linear_warmup", "lambda",
                                  "warmup_then_cosine", "three_phases", "inverse_time"])
def test_state_dict_resumes_the_schedule(name):
    make, _, _ = SCHEDULES[name]
    opt = two_group_optimizer(fnn.optim.Adam)
    scheduler = make(opt)
    full = lr_sequence(scheduler, EPOCHS)
    # Replay the first 12 epochs, save, and resume in fresh objects.
    opt_a = two_group_optimizer(fnn.optim.Adam)
    sched_a = make(opt_a)
    lr_sequence(sched_a, 12)
    saved_opt, saved_sched = opt_a.state_dict(), sched_a.state_dict()
    assert saved_sched["last_epoch"] == 12
    assert "optimizer" not in saved_sched
    opt_b = two_group_optimizer(fnn.optim.Adam, lrs=(0.7, 0.7))
    sched_b = make(opt_b)
    opt_b.load_state_dict(saved_opt)
    sched_b.load_state_dict(saved_sched)
    assert sched_b.last_epoch == 12
    resumed = lr_sequence(sched_b, EPOCHS - 12)
    np.testing.assert_array_equal(resumed, full[12:])


def test_resume_with_last_epoch_like_torch():
    """Passing last_epoch=k to a schedule over an optimizer that carries initial_lr continues at
    epoch k + 1 (as torch does)."""
    opt = two_group_optimizer()
    scheduler = sched.CosineAnnealingLR(opt, T_max=20)
    for _ in range(6):
        scheduler.step()
    resumed_opt = two_group_optimizer(lrs=(9.0, 9.0))
    resumed_opt.load_state_dict(opt.state_dict())
    resumed = sched.CosineAnnealingLR(resumed_opt, T_max=20, last_epoch=6)
    assert resumed.last_epoch == 7
    scheduler.step()
    assert resumed.get_last_lr() == scheduler.get_last_lr()
    assert resumed.base_lrs == list(BASE_LRS)
    with pytest.raises(KeyError, match="initial_lr"):
        sched.CosineAnnealingLR(two_group_optimizer(), T_max=20, last_epoch=6)


# ------------------------------------------------------------------------------------------------
# Validation


@pytest.mark.parametrize("make", [
    lambda o: sched.StepLR(o, step_size=0),
    lambda o: sched.StepLR(o, step_size=-2),
    lambda o: sched.StepLR(o, step_size=2.5),
    lambda o: sched.StepLR(o, step_size=True),
    lambda o: sched.ExponentialLR(o, gamma=0.0),
    lambda o: sched.ExponentialLR(o, gamma=-0.5),
    lambda o: sched.InverseTimeLR(o, decay=-0.1),
    lambda o: sched.InverseTimeLR(o, decay=float("nan")),
    lambda o: sched.CosineAnnealingLR(o, T_max=0),
    lambda o: sched.CosineAnnealingLR(o, T_max=-5),
    lambda o: sched.LinearLR(o, start_factor=0.0),
    lambda o: sched.LinearLR(o, start_factor=1.5),
    lambda o: sched.LinearLR(o, end_factor=-0.1),
    lambda o: sched.LinearLR(o, end_factor=1.1),
    lambda o: sched.LinearLR(o, total_iters=0),
    lambda o: sched.SequentialLR(o, [sched.StepLR(o, 2), sched.StepLR(o, 3)], milestones=[]),
    lambda o: sched.SequentialLR(o, [sched.StepLR(o, 2), sched.StepLR(o, 3)], milestones=[2, 4]),
    lambda o: sched.SequentialLR(o, [sched.StepLR(o, 2), sched.StepLR(o, 3), sched.StepLR(o, 4)],
                                 milestones=[6, 3]),
], ids=["step0", "step-2", "step2.5", "step_bool", "gamma0", "gamma-", "decay-", "decay_nan",
        "T_max0", "T_max-", "start0", "start1.5", "end-", "end1.1", "iters0", "seq_few",
        "seq_many", "seq_unsorted"])
def test_invalid_schedule_arguments_raise_value_error(make):
    opt = two_group_optimizer()
    with pytest.raises((ValueError, TypeError)):  # a wrong type (2.5, True) is a TypeError
        make(opt)


def test_valid_boundary_arguments_are_accepted():
    opt = two_group_optimizer()
    sched.InverseTimeLR(opt, decay=0.0)  # a constant rate
    assert opt.param_groups[0]["lr"] == BASE_LRS[0]
    sched.LinearLR(opt, start_factor=1.0, end_factor=0.0, total_iters=1)
    sched.StepLR(opt, step_size=1, gamma=1.0)
    s = sched.CosineAnnealingLR(opt, T_max=1)
    s.step()
    assert s.get_last_lr() == pytest.approx([0.0, 0.0], abs=1e-17)
