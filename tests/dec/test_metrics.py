"""DEC's maths in NumPy and the clustering metrics; no Caffe."""
import numpy as np
import pytest

from dec import metrics, multi_t


def test_target_distribution_matches_dec_py():
    rng = np.random.default_rng(1)
    q = rng.dirichlet(np.ones(4), size=50)
    # dec.py DisKmeans, literally: normalise, bias = 1/colsum scaled, q^2 * bias, normalise.
    weight = (q.T / q.sum(axis=1)).T
    bias = 1.0 / weight.sum(axis=0)
    bias = 4 * bias / bias.sum()
    weight = (weight ** 2) * bias
    weight = (weight.T / weight.sum(axis=1)).T
    np.testing.assert_allclose(multi_t.target_distribution(q), weight, rtol=1e-12)


def test_soft_assignment_is_dec_tmm_transform():
    rng = np.random.default_rng(2)
    z, centres = rng.normal(size=(20, 3)), rng.normal(size=(4, 3))
    dist2 = ((z[:, None, :] - centres[None]) ** 2).sum(-1)
    r = 1.0 / (1.0 + dist2)          # TMM.transform with alpha 1
    r = (r.T / r.sum(axis=1)).T
    q, _ = multi_t.soft_assignment(z, centres.T)
    np.testing.assert_allclose(q, r, rtol=1e-12)


def test_soft_assignment_in_blocks_of_rows_is_bit_for_bit_the_whole(monkeypatch):
    """Many samples are assigned ROWS_AT_A_TIME at a time; each row is its own
    arithmetic, so q and w are those of one pass over all rows, every bit
    (DEC's q decides when the loop stops)."""
    rng = np.random.default_rng(5)
    z, mu, s = rng.normal(size=(5000, 10)) * 3, rng.normal(size=(10, 10)), rng.random((10, 10)) + .5
    for alpha, var in [(1.0, None), (0.7, s)]:
        blocks = multi_t.soft_assignment(z, mu, var, alpha)
        monkeypatch.setattr(multi_t, "ROWS_AT_A_TIME", len(z))
        whole = multi_t.soft_assignment(z, mu, var, alpha)
        monkeypatch.undo()
        assert all(np.array_equal(a, b) for a, b in zip(blocks, whole))


def test_cluster_acc_is_one_for_permuted_labels():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 6, size=200)
    perm = rng.permutation(6)
    acc, mapping = metrics.cluster_acc(y, perm[y])
    assert acc == 1.0
    assert all(mapping[perm[c]] == c for c in range(6))


def test_cluster_acc_on_a_hand_made_confusion():
    # Actual rows, predicted columns: best matching is 0→1 (8), 1→0 (6), 2→2 (3) = 17/30.
    counts = np.array([[2, 8, 0], [6, 1, 3], [4, 3, 3]])
    y_true = np.repeat([0, 0, 0, 1, 1, 1, 2, 2, 2], counts.ravel())
    y_pred = np.repeat([0, 1, 2] * 3, counts.ravel())
    acc, mapping = metrics.cluster_acc(y_true, y_pred)
    assert acc == pytest.approx(17 / 30)
    assert mapping == {1: 0, 0: 1, 2: 2}
    np.testing.assert_array_equal(metrics.confusion(y_true, y_pred), counts)
    table = metrics.confusion_table(counts)
    assert table.splitlines()[0].split() == ["Predict", "0", "1", "2"]
    assert table.splitlines()[1].split() == ["Actual", "0", "2", "8", "0"]


def test_nmi_is_decs_geometric_normalisation():
    """DEC's NMI (scikit-learn 2015): I(Y; C) / sqrt(H(Y) H(C))."""
    y_true = np.array([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    y_pred = np.array([0, 0, 1, 1, 3, 1, 2, 2, 0, 3])   # four clusters: entropies differ
    joint = metrics.confusion(y_true, y_pred) / len(y_true)
    pa, pb = joint.sum(1), joint.sum(0)
    nz = joint > 0
    mutual = (joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz])).sum()
    entropy = lambda p: -(p[p > 0] * np.log(p[p > 0])).sum()
    got = metrics.scores(y_true, y_pred)
    assert got["nmi"] == pytest.approx(mutual / np.sqrt(entropy(pa) * entropy(pb)))
    assert got["nmi_arithmetic"] == pytest.approx(mutual / ((entropy(pa) + entropy(pb)) / 2))
    assert got["nmi"] != pytest.approx(got["nmi_arithmetic"])


def test_samples_without_a_class_are_left_out_of_the_scores():
    """Photos without a class prefix are labelled -1: scored on the others."""
    y_true = np.array([0, 0, 1, 1, -1, -1, 2, 2])
    y_pred = np.array([1, 1, 0, 0, 2, 0, 2, 2])
    known = y_true >= 0
    assert metrics.scores(y_true, y_pred) == metrics.scores(y_true[known], y_pred[known])
    assert metrics.scores(y_true, y_pred)["acc"] == 1.0
    counts = metrics.confusion(y_true, y_pred, n_true=4, n_pred=3)   # class 3 absent
    assert counts.shape == (4, 3) and counts.sum() == 6
    assert metrics.confusion_table(counts, ["a", "b", "c", "d"]).count("\n") >= 4


def q_loop(z, mu, s, alpha):
    """q_ij straight from the formula, one sample and centre at a time (float64)."""
    m, c = z.shape[0], mu.shape[1]
    q = np.zeros((m, c))
    for i in range(m):
        for j in range(c):
            d = sum(s[k, j] * (z[i, k] - mu[k, j]) ** 2 for k in range(z.shape[1]))
            q[i, j] = np.sqrt(np.prod(s[:, j])) * (1 + d / alpha) ** (-(alpha + 1) / 2)
        q[i] /= q[i].sum()
    return q


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.5])
def test_multi_t_with_any_alpha_and_variances_against_float64(alpha):
    """Soft assignment, loss and every gradient for alpha != 1 and inverse
    variances != 1: q against the formula, gradients against central
    differences of the loss (p fixed, as the layer's backward)."""
    rng = np.random.default_rng(11)
    z, mu = rng.normal(size=(6, 3)), rng.normal(size=(3, 4))
    s = rng.uniform(0.5, 2.0, size=(3, 4))
    p = multi_t.target_distribution(q_loop(z, mu, s, alpha))
    loss, q, dz, dmu, ds = multi_t.loss_and_gradients(z, p, mu, s, alpha)
    np.testing.assert_allclose(q, q_loop(z, mu, s, alpha), rtol=1e-12)
    assert loss == pytest.approx(np.sum(p * np.log(p / q)) / len(z), rel=1e-12)

    def numeric(array):
        grad = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + 1e-6
            up = multi_t.kl_loss(p, q_loop(z, mu, s, alpha))
            array[index] = saved - 1e-6
            down = multi_t.kl_loss(p, q_loop(z, mu, s, alpha))
            array[index] = saved
            grad[index] = (up - down) / 2e-6
        return grad

    np.testing.assert_allclose(dz, numeric(z), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(dmu, numeric(mu), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(ds, numeric(s), rtol=1e-5, atol=1e-9)
