"""Each extra term equals an independent NumPy computation of its formula on a small input."""
import numpy as np
import jax
import jax.numpy as jnp
import pytest

from jka import losses
from jka.losses import distill as D
from jka.methods.distill.terms import TERMS, build_extra, get as get_term

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _fresh_rng():
    """Every test draws its inputs from the same seed, whatever ran before it in this worker: with
    one shared generator, pytest-xdist's test distribution decided the inputs, and in one CI run the
    SVD finite-difference check drew inputs where it failed (gradient −0.11 vs finite difference
    0.94; the loss aligns singular vectors, which is not smooth everywhere). With its own seed it
    passed for each of 30 seeds tried."""
    global RNG
    RNG = np.random.default_rng(0)


def feat(b=4, h=4, w=4, c=3, relu=False):
    x = RNG.normal(size=(b, h, w, c)).astype(np.float32)
    return np.maximum(x, 0) if relu else x


def close(a, b, rtol=1e-4, atol=1e-6):
    np.testing.assert_allclose(float(a), float(b), rtol=rtol, atol=atol)


def np_normalize(x, axis):
    n = np.sqrt((x ** 2).sum(axis=axis, keepdims=True))
    return x / np.maximum(n, 1e-12)


def np_pool(x, h):
    b, H, W, c = x.shape
    f = H // h
    return x.reshape(b, h, f, h, f, c).mean(axis=(2, 4))


def test_hint():
    a, b = feat(), feat()
    assert TERMS["hint"].fn is losses.mse  # FitNet's hint is the MSE of the regressed map
    close(TERMS["hint"].fn(a, b), ((a - b) ** 2).mean())


def test_hint_hand_value():
    a = np.zeros((1, 1, 1, 2), np.float32)
    b = np.array([[[[1.0, 3.0]]]], np.float32)
    close(TERMS["hint"].fn(a, b), 5.0)  # (1 + 9) / 2


def test_attention_two_stages_and_pooling():
    s1, t1 = feat(c=2), feat(c=5)
    s2, t2 = feat(h=4, w=4, c=2), feat(h=2, w=2, c=5)  # student map pooled to 2x2

    def a(f):
        m = (f ** 2).mean(axis=-1).reshape(f.shape[0], -1)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    want = ((a(s1) - a(t1)) ** 2).mean() + ((a(np_pool(s2, 2)) - a(t2)) ** 2).mean()
    close(D.attention([s1, s2], [t1, t2]), want)


def test_sp():
    s, t = feat(b=5, c=2), feat(b=5, c=7)

    def g(f):
        f = f.reshape(f.shape[0], -1)
        m = f @ f.T
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    close(D.sp(s, t), ((g(t) - g(s)) ** 2).sum() / 25.0)


def test_cc_hand_value():
    es = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32)
    et = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 3.0]], np.float32)
    # δ = [[1,0],[0,1],[1,2]] → Σ δ0·δ1 = 0, Σ δ1·δ2 = 2 → mean 1
    close(D.cc(es, et), 1.0)
    es, et = RNG.normal(size=(6, 4)), RNG.normal(size=(6, 4))
    d = np.abs(es - et)
    close(D.cc(es, et), np.mean([np.dot(d[i], d[i + 1]) for i in range(5)]))


@pytest.mark.parametrize("normalise", [False, True])
def test_cc_extra_embeds_linearly_and_normalises_only_when_asked(normalise):
    """The zoo's CC term on its own embedders' weights, against NumPy: ``e = W f + b`` (the reference's
    ``LinearEmbed``) by default, ``e / ‖e‖`` with ``distill.cc_normalise``."""
    fs, ft = RNG.normal(size=(5, 6)).astype(np.float32), RNG.normal(size=(5, 3)).astype(np.float32)
    extra = build_extra("cc", [(3,)], cc_normalise=normalise)
    v = extra.init(jax.random.PRNGKey(0), [fs], [ft], train=False)
    got = extra.apply(v, [fs], [ft], train=False)["extra"]

    def embed(f, p):
        e = f @ np.asarray(p["kernel"]) + np.asarray(p["bias"])
        return e / np.linalg.norm(e, axis=1, keepdims=True) if normalise else e

    d = np.abs(embed(fs, v["params"]["embed_s"]["linear"]) - embed(ft, v["params"]["embed_t"]["linear"]))
    close(got, np.mean(np.sum(d[:-1] * d[1:], axis=1)))


def test_vid():
    mu, t = feat(c=3), feat(c=3)
    theta = np.array([0.1, -1.0, 2.0], np.float32)
    var = np.log1p(np.exp(theta)) + 1e-5
    want = (0.5 * ((mu - t) ** 2 / var + np.log(var))).mean()
    close(D.vid(mu, t, theta), want)


def np_rkd(s, t):
    def dist(e):
        n = e.shape[0]
        d = np.array([[np.linalg.norm(e[i] - e[j]) for j in range(n)] for i in range(n)])
        return d / d[d > 0].mean()

    def ang(e):
        n = e.shape[0]
        out = np.zeros((n, n, n))
        for i in range(n):
            for j in range(n):
                for k in range(n):
                    u, v = e[j] - e[i], e[k] - e[i]
                    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                    if nu > 0 and nv > 0:
                        out[i, j, k] = u @ v / (nu * nv)
        return out.ravel()

    def huber(a, b):
        x = np.abs(a - b)
        return np.where(x < 1, 0.5 * x * x, x - 0.5).mean()

    return 25 * huber(dist(s), dist(t)) + 50 * huber(ang(s), ang(t))


def test_rkd():
    s, t = RNG.normal(size=(5, 3)).astype(np.float32), RNG.normal(size=(5, 8)).astype(np.float32) * 3
    close(D.rkd(s, t), np_rkd(s, t), rtol=1e-4)


def test_rkd_gradient_finite():
    s, t = RNG.normal(size=(5, 3)).astype(np.float32), RNG.normal(size=(5, 8)).astype(np.float32)
    g = jax.grad(D.rkd)(jnp.asarray(s), jnp.asarray(t))
    assert np.all(np.isfinite(np.asarray(g)))


def test_pkt():
    s, t = RNG.normal(size=(6, 3)), RNG.normal(size=(6, 5))

    def p(f):
        f = f / (np.linalg.norm(f, axis=1, keepdims=True) + 1e-7)
        k = (f @ f.T + 1) / 2
        return k / k.sum(axis=1, keepdims=True)

    ps, pt = p(s), p(t)
    close(D.pkt(s.astype(np.float32), t.astype(np.float32)),
          (pt * np.log((pt + 1e-7) / (ps + 1e-7))).mean(), rtol=1e-3)


def test_nst():
    s, t = feat(b=2, h=2, w=2, c=3), feat(b=2, h=2, w=2, c=4)

    def maps(f):  # (B, C, HW), each channel map unit-norm
        m = f.reshape(f.shape[0], -1, f.shape[-1]).transpose(0, 2, 1)
        return m / np.linalg.norm(m, axis=2, keepdims=True)

    def k(a, b):
        return np.mean([(a[n, i] @ b[n, j]) ** 2 for n in range(a.shape[0])
                        for i in range(a.shape[1]) for j in range(b.shape[1])])

    ms, mt = maps(s), maps(t)
    close(D.nst([s], [t]), k(mt, mt) - 2 * k(ms, mt) + k(ms, ms))


def test_fsp():
    s1, s2 = feat(h=4, w=4, c=2), feat(h=2, w=2, c=3)
    t1, t2 = feat(h=4, w=4, c=2), feat(h=2, w=2, c=3)

    def g(a, b):
        a = np_pool(a, b.shape[1])
        n = b.shape[1] * b.shape[2]
        return np.einsum("bpc,bpd->bcd", a.reshape(a.shape[0], n, -1), b.reshape(b.shape[0], n, -1)) / n

    close(D.fsp([s1, s2], [t1, t2]), ((g(s1, s2) - g(t1, t2)) ** 2).mean())


def test_ft():
    s, t = feat(c=2), feat(h=2, w=2, c=2)

    def fac(f):
        v = f.reshape(f.shape[0], -1)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    close(D.ft(s, t), np.abs(fac(np_pool(s, 2)) - fac(t)).mean())


def np_svd_term(fs_list, ft_list, k=1):
    """KDSVD with NumPy's SVD: teacher top-k, student top-(k+3) aligned by max |cos| with sign."""
    total, prev = 0.0, None
    b = fs_list[0].shape[0]
    for fs, ft in zip(fs_list, ft_list):
        vs_all, vt_all = [], []
        for n in range(b):
            _, sv_t, vh_t = np.linalg.svd(ft[n].reshape(-1, ft.shape[-1]), full_matrices=False)
            _, _, vh_s = np.linalg.svd(fs[n].reshape(-1, fs.shape[-1]), full_matrices=False)
            st = sv_t[:k] / np.linalg.norm(sv_t[:k])
            vt = vh_t[:k].T  # (C, k)
            vt = vt * np.sign(vt[np.argmax(np.abs(vt), axis=0), np.arange(k)])  # largest entry positive
            vs = vh_s[:k + 3].T  # (C, k+3)
            cos = vs.T @ vt
            picked = np.stack([vs[:, np.argmax(np.abs(cos[:, j]))] * np.sign(cos[np.argmax(np.abs(cos[:, j])), j])
                               for j in range(k)], axis=1)
            vs_all.append(picked * st)
            vt_all.append(vt * st)
        vs_all, vt_all = np.stack(vs_all), np.stack(vt_all)
        if prev is not None:
            rb = lambda v, p: np.exp(-(v[:, :, None, :] - p[:, None, :, :]) ** 2 / 8)
            total += ((rb(vs_all, prev[0]) - rb(vt_all, prev[1])) ** 2).sum() / b
        prev = (vs_all, vt_all)
    return total


def test_svd():
    fs = [feat(b=3, h=4, w=4, c=5), feat(b=3, h=2, w=2, c=6)]
    ft = [feat(b=3, h=4, w=4, c=5), feat(b=3, h=2, w=2, c=6)]
    close(D.svd(fs, ft), np_svd_term(fs, ft), rtol=1e-3)


def test_svd_gradient_finite_with_dead_channels():
    fs = [feat(b=2, h=4, w=4, c=6), feat(b=2, h=4, w=4, c=6)]
    fs = [f.copy() for f in fs]
    for f in fs:
        f[..., 3:] = 0.0  # dead channels: repeated zero singular values
    ft = [feat(b=2, h=4, w=4, c=6), feat(b=2, h=4, w=4, c=6)]
    g = jax.grad(lambda a: D.svd(a, ft))([jnp.asarray(f) for f in fs])
    assert all(np.all(np.isfinite(np.asarray(x))) for x in g)
    assert any(np.abs(np.asarray(x)).sum() > 0 for x in g)


def test_svd_gradient_matches_finite_differences():
    fs = [feat(b=1, h=3, w=3, c=5), feat(b=1, h=3, w=3, c=5)]
    ft = [feat(b=1, h=3, w=3, c=5), feat(b=1, h=3, w=3, c=5)]
    f = lambda a: D.svd([a, jnp.asarray(fs[1])], ft)
    x = jnp.asarray(fs[0], jnp.float32)
    g = np.asarray(jax.grad(f)(x))
    d = RNG.normal(size=x.shape).astype(np.float32)
    eps = 1e-2
    num = (float(f(x + eps * d)) - float(f(x - eps * d))) / (2 * eps)
    np.testing.assert_allclose((g * d).sum(), num, rtol=5e-2, atol=1e-5)


def test_registry_defaults_match_spec():
    want = {"kd": (0.9, 0.1, 0), "hint": (0.9, 0.1, 100), "at": (1, 0.1, 1000), "sp": (0.9, 0.1, 3000),
            "cc": (0.9, 0.1, 0.02), "vid": (0, 1, 1), "rkd": (0.9, 0.1, 1), "pkt": (0.9, 0.1, 30000),
            "nst": (0.9, 0.1, 50), "svd": (0.9, 0.1, 10)}
    for name, w in want.items():
        assert get_term(name).defaults == pytest.approx(w)
    assert get_term("attention") is get_term("at")
