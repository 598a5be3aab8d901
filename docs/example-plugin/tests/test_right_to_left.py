from loflex import Example, collate
from loflex.extension.testing import check_order_dynamics
from loflex_reverse_order import RightToLeft


def test_contract():
    check_order_dynamics(RightToLeft(RightToLeft.Options()))


def test_later_tokens_are_inserted_earlier():
    order = RightToLeft(RightToLeft.Options())
    batch = collate([Example(target=[4, 5, 6, 7, 8])])
    rates = order(batch, t=batch.x_1.new_zeros(1).float())
    b = rates.b_in[0, :5]
    expected_time = 1 / (1 + b)  # E[T_in] for a = 1
    assert (expected_time[1:] < expected_time[:-1]).all()
