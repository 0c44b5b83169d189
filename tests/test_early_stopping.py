"""Early stopping as a pure decision: the kept weights are the lowest validation loss, the patience counter moves
only on improvements of at least min_delta, stopped members stay stopped."""
import math

import numpy as np

from jaxprobe.train.early_stopping import StoppingState, update


def run(losses_per_epoch, min_delta=0.1, patience=2):
    """Feed epochs of [K] validation losses; returns the final state and the improved mask of every epoch."""
    state, masks = StoppingState.start(len(losses_per_epoch[0])), []
    for epoch, losses in enumerate(losses_per_epoch):
        state, improved = update(state, losses, epoch, min_delta, patience)
        masks.append(improved.tolist())
    return state, masks


def test_a_fresh_state_improves_on_any_finite_loss():
    start = StoppingState.start(2)
    assert start == StoppingState((math.inf, math.inf), (-1, -1), (0, 0), (True, True), (0, 0), (math.inf, math.inf))
    state, improved = update(start, [5.0, 7.0], 0, 0.1, 3)
    assert improved.dtype == bool and improved.tolist() == [True, True]
    assert state == StoppingState((5.0, 7.0), (0, 0), (0, 0), (True, True), (1, 1), (5.0, 7.0))
    assert start.best_val_loss == (math.inf, math.inf)  # the input state is left as it was


def test_an_improvement_below_min_delta_keeps_the_weights_but_does_not_reset_patience():
    state, masks = run([[1.0], [0.95], [0.92]], min_delta=0.1, patience=3)
    assert masks == [[True], [True], [True]]  # every lower loss gives the weights that are kept
    # the lowest loss is the best; the patience counter still measures against the last min_delta improvement
    assert state.best_val_loss == (0.92,) and state.best_epoch == (2,) and state.bad_epochs == (2,)
    assert state.reference_loss == (1.0,)
    state, improved = update(state, [0.93], 3, 0.1, 3)
    assert improved.tolist() == [False] and state.active == (False,) and state.best_epoch == (2,)


def test_small_steps_count_once_they_add_up_to_min_delta_from_the_best():
    state, masks = run([[1.0], [0.95], [0.875]], min_delta=0.125, patience=3)
    assert masks == [[True], [True], [True]]
    # 1.0 - 0.875 is exactly min_delta: it counts, and the counter starts again from there
    assert state.best_val_loss == (0.875,) and state.best_epoch == (2,) and state.bad_epochs == (0,)
    assert state.reference_loss == (0.875,)


def test_a_member_stops_after_patience_epochs_without_improvement_and_stays_stopped():
    state, masks = run([[1.0], [1.0], [2.0], [0.1], [0.0]], min_delta=0.1, patience=2)
    assert masks == [[True], [False], [False], [False], [False]]  # epochs 3 and 4 come after the stop
    assert state == StoppingState((1.0,), (0,), (2,), (False,), (3,), (1.0,))


def test_members_stop_independently_and_the_best_epoch_is_the_lowest_counted_loss():
    losses = [[1.0, 1.0], [0.5, 1.25], [0.625, 1.5], [0.75, 0.25], [0.45, 0.125]]
    state, masks = run(losses, min_delta=0.125, patience=3)
    # member 0: 0.5 at epoch 1, then three epochs without a counted improvement (0.45 is only 0.05 lower, so it
    # becomes the kept weights but leaves the counter running) -> stops
    # member 1: two worse epochs, then 0.25 at epoch 3 resets its patience and 0.125 improves by exactly min_delta
    assert masks == [[True, True], [True, False], [False, False], [False, True], [True, True]]
    assert state.best_val_loss == (0.45, 0.125) and state.best_epoch == (4, 4)
    assert state.active == (False, True) and state.epochs_trained == (5, 5) and state.bad_epochs == (3, 0)
    state, improved = update(state, [0.0, 0.0], 5, 0.125, 3)
    assert improved.tolist() == [False, True] and state.epochs_trained == (5, 6) and state.best_val_loss[0] == 0.45


def test_float32_losses_are_kept_and_compared_as_their_float64_values():
    state, masks = run([np.array([0.3], np.float32), np.array([0.2], np.float32)], min_delta=0.1, patience=2)
    assert masks == [[True], [True]]  # 0.30000001192... - 0.20000000298... >= 0.1
    assert state.best_val_loss == (0.20000000298023224,) and type(state.best_val_loss[0]) is float


def test_the_state_round_trips_through_the_checkpoint_dictionary():
    state, _ = run([[1.0, 2.0], [0.5, 2.5]], min_delta=0.1, patience=1)
    d = state.to_dict()
    assert d == {"best_val_loss": [0.5, 2.0], "best_epoch": [1, 0], "bad_epochs": [0, 1], "active": [True, False],
                 "epochs_trained": [2, 2], "reference_loss": [0.5, 2.0]}
    assert StoppingState.from_dict(d) == state
    old = {k: v for k, v in d.items() if k != "reference_loss"}  # a checkpoint written before the split
    assert StoppingState.from_dict(old) == state
