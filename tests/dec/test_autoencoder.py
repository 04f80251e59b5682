"""dec/autoencoder.py without Caffe: the keras recipe's epoch shuffle."""
import numpy as np
import pytest

from dec.autoencoder import EpochShuffle


class FakeNet:
    def __init__(self, batch, dim):
        self.blobs = {"data": type("Blob", (), {"data": np.zeros((batch, dim), np.float32)})()}


def fed(shuffle, iterations):
    """The first column of each batch the feed puts into a net, by iteration."""
    net = FakeNet(shuffle.batch, shuffle.x.shape[1])
    out = []
    for i in iterations:
        shuffle(net, i)
        out.append(net.blobs["data"].data[:, 0].copy())
    return np.array(out)


def test_each_epoch_is_a_new_permutation_of_the_samples_in_whole_batches():
    x = np.arange(11 * 3, dtype=np.float32).reshape(11, 3)   # sample i's first value: 3 i
    shuffle = EpochShuffle(x, batch=4, seed=7)
    assert shuffle.per_epoch == 2                             # 11 // 4: a partial batch left out
    batches = fed(shuffle, range(6)) / 3
    epochs = batches.reshape(3, 8)
    for epoch in epochs:
        assert len(set(epoch)) == 8 and set(epoch) <= set(range(11))   # no sample twice
    assert len({tuple(e) for e in epochs}) == 3               # each epoch its own order
    assert not all((e == np.arange(8)).all() for e in epochs)  # not the file's order


def test_a_resumed_feed_gives_what_an_uninterrupted_one_gives():
    x = np.random.default_rng(0).random((50, 3), dtype=np.float32)
    whole = fed(EpochShuffle(x, 8, seed=1), range(40))
    resumed = fed(EpochShuffle(x, 8, seed=1), range(23, 40))   # a fresh process at 23
    np.testing.assert_array_equal(resumed, whole[23:])
    assert not np.array_equal(fed(EpochShuffle(x, 8, seed=2), range(40)), whole)


def test_fewer_samples_than_a_batch_is_a_one_line_error():
    with pytest.raises(ValueError, match="3 samples, fewer than a batch of 4"):
        EpochShuffle(np.zeros((3, 5), np.float32), 4, seed=1)
