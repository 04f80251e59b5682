"""HOG as a plain loop, pixel by pixel and cell by cell, in the order of
Felzenszwalb's features.cc as pyvision runs it (x outer, y inner; channels
R, G, B; the 4 bilinear corners in turn; each sum left to right). Slow: the
reference that data_prep.features.hog, vectorised, must equal bit for bit.
"""
import math

import numpy as np

from data_prep.features import EPS, TEXTURE_WEIGHT, TRUNCATE, UU, VV


def hog_loop(image, sbin=8):
    im = np.asarray(image, dtype=np.float64)
    rows, cols = im.shape[:2]
    b0, b1 = rows // sbin, cols // sbin              # blocks along y (rows), x (columns)
    vis0, vis1 = b0 * sbin, b1 * sbin
    hist = np.zeros(b1 * b0 * 9)                     # index o*b0*b1 + x*b0 + y
    for x in range(1, vis1 - 1):
        for y in range(1, vis0 - 1):
            best = None
            for c in range(3):
                dx = im[y, x + 1, c] - im[y, x - 1, c]
                dy = im[y + 1, x, c] - im[y - 1, x, c]
                v = dx * dx + dy * dy
                if best is None or v > best[0]:
                    best = (v, dx, dy)
            v, dx, dy = best
            best_dot, best_o = 0.0, 0
            for o in range(9):
                dot = UU[o] * dx + VV[o] * dy
                if dot > best_dot:
                    best_dot, best_o = dot, o
                elif -dot > best_dot:
                    best_dot, best_o = -dot, o
            xp = (x + 0.5) / sbin - 0.5
            yp = (y + 0.5) / sbin - 0.5
            ixp, iyp = math.floor(xp), math.floor(yp)
            vx0, vy0 = xp - ixp, yp - iyp
            vx1, vy1 = 1.0 - vx0, 1.0 - vy0
            v = math.sqrt(v)
            base = best_o * b0 * b1
            if ixp >= 0 and iyp >= 0:
                hist[base + ixp * b0 + iyp] += vx1 * vy1 * v
            if ixp + 1 < b1 and iyp >= 0:
                hist[base + (ixp + 1) * b0 + iyp] += vx0 * vy1 * v
            if ixp >= 0 and iyp + 1 < b0:
                hist[base + ixp * b0 + iyp + 1] += vx1 * vy0 * v
            if ixp + 1 < b1 and iyp + 1 < b0:
                hist[base + (ixp + 1) * b0 + iyp + 1] += vx0 * vy0 * v
    norm = np.zeros(b1 * b0)
    for o in range(9):
        for i in range(b1 * b0):
            norm[i] += hist[o * b0 * b1 + i] * hist[o * b0 * b1 + i]
    out1, out0 = b1 - 2, b0 - 2
    feat = np.zeros((out0, out1, 13))

    def energy(x, y):                               # the 2x2 block with corner (x, y)
        s = x * b0 + y
        return norm[s] + norm[s + 1] + norm[s + b0] + norm[s + b0 + 1] + EPS

    for x in range(out1):
        for y in range(out0):
            n1 = 1.0 / math.sqrt(energy(x + 1, y + 1))
            n2 = 1.0 / math.sqrt(energy(x + 1, y))
            n3 = 1.0 / math.sqrt(energy(x, y + 1))
            n4 = 1.0 / math.sqrt(energy(x, y))
            t1 = t2 = t3 = t4 = 0.0
            for o in range(9):
                src = hist[o * b0 * b1 + (x + 1) * b0 + y + 1]
                h1, h2 = min(src * n1, TRUNCATE), min(src * n2, TRUNCATE)
                h3, h4 = min(src * n3, TRUNCATE), min(src * n4, TRUNCATE)
                feat[y, x, o] = 0.5 * (h1 + h2 + h3 + h4)
                t1 += h1
                t2 += h2
                t3 += h3
                t4 += h4
            feat[y, x, 9:] = (TEXTURE_WEIGHT * t1, TEXTURE_WEIGHT * t2, TEXTURE_WEIGHT * t3,
                              TEXTURE_WEIGHT * t4)
    return feat
