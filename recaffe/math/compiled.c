/* recaffe's compiled kernels for deploy mode (recaffe/math/compiled.py builds and loads this file).
 *
 * Each kernel makes one pass over channels-last (N, H, W, C) float32 memory, where PyTorch's own
 * versions are a dozen elementwise kernels (LRN) or need a second pass to give Caffe's windows
 * (pooling). Plain C, no Python API: Python calls them through ctypes, which releases the GIL for
 * the call, so two threads run them at once. Built with -ffp-contract=off: a sum or product is
 * rounded as written, as PyTorch's kernels round it.
 */
#include <float.h>
#include <math.h>

#define MAX_CHANNELS 8192
#define MAX_HALF 64

/* LRN across channels for `pixels` pixels of `c` channels: scale = k + alpha * (window sum of
 * x^2 over `size` channels, zero-padded) / size, y = x * scale^-beta. The window sum adds the
 * centre, then the pairs at distance 1, 2, ... (the order of LRNLayer's shifted sums). */
int lrn_across(const float *restrict x, float *restrict y, long pixels, long c, long size,
               float alpha, float beta, float k) {
    long half = (size - 1) / 2;
    float padded[MAX_CHANNELS + 2 * MAX_HALF], sum[MAX_CHANNELS];
    if (c > MAX_CHANNELS || half > MAX_HALF) {
        return 1;
    }
    float *sq = padded + half;
    for (long i = 0; i < half; ++i) {
        padded[i] = 0.0f;
        sq[c + i] = 0.0f;
    }
    for (long p = 0; p < pixels; ++p) {
        const float *restrict xp = x + p * c;
        float *restrict yp = y + p * c;
        for (long i = 0; i < c; ++i) {
            sq[i] = xp[i] * xp[i];
        }
        if (half == 2) { /* local_size 5, the usual: one pass */
            for (long i = 0; i < c; ++i) {
                sum[i] = sq[i] + sq[i - 1] + sq[i + 1] + sq[i - 2] + sq[i + 2];
            }
        } else {
            for (long i = 0; i < c; ++i) {
                sum[i] = sq[i];
            }
            for (long d = 1; d <= half; ++d) { /* each a pass over the channels: vectorised */
                for (long i = 0; i < c; ++i) {
                    sum[i] += sq[i - d];
                }
                for (long i = 0; i < c; ++i) {
                    sum[i] += sq[i + d];
                }
            }
        }
        if (beta == 0.75f) { /* scale^-0.75 = 1 / sqrt(sqrt(scale) * scale) */
            for (long i = 0; i < c; ++i) {
                float scale = sum[i] / (float)size * alpha + k;
                yp[i] = 1.0f / sqrtf(sqrtf(scale) * scale) * xp[i];
            }
        } else {
            for (long i = 0; i < c; ++i) {
                float scale = sum[i] / (float)size * alpha + k;
                yp[i] = expf(logf(scale) * -beta) * xp[i];
            }
        }
    }
    return 0;
}

/* Caffe's MAX (ave = 0) or AVE (ave = 1) pooling of output rows [first, last) of the flattened
 * (image, output row) index: each window clipped to the image; MAX keeps the first strict maximum
 * from -FLT_MAX (NaN never wins), AVE divides the sum by the window clipped to H + pad, W + pad. */
void pool(const float *restrict x, float *restrict y, long height, long width, long c,
          long out_h, long out_w, long kernel_h, long kernel_w, long stride_h, long stride_w,
          long pad_h, long pad_w, int ave, long first, long last) {
    for (long row = first; row < last; ++row) {
        long image = row / out_h, oh = row % out_h;
        const float *xi = x + image * height * width * c;
        long h0 = oh * stride_h - pad_h;
        long h1 = h0 + kernel_h < height + pad_h ? h0 + kernel_h : height + pad_h;
        long rows = h1 - h0;
        h0 = h0 > 0 ? h0 : 0;
        h1 = h1 < height ? h1 : height;
        for (long ow = 0; ow < out_w; ++ow) {
            float *restrict yp = y + (row * out_w + ow) * c;
            long w0 = ow * stride_w - pad_w;
            long w1 = w0 + kernel_w < width + pad_w ? w0 + kernel_w : width + pad_w;
            float size = (float)(rows * (w1 - w0));
            w0 = w0 > 0 ? w0 : 0;
            w1 = w1 < width ? w1 : width;
            for (long i = 0; i < c; ++i) {
                yp[i] = ave ? 0.0f : -FLT_MAX;
            }
            for (long h = h0; h < h1; ++h) {
                for (long w = w0; w < w1; ++w) {
                    const float *restrict xp = xi + (h * width + w) * c;
                    if (ave) {
                        for (long i = 0; i < c; ++i) {
                            yp[i] += xp[i];
                        }
                    } else {
                        for (long i = 0; i < c; ++i) {
                            yp[i] = xp[i] > yp[i] ? xp[i] : yp[i];
                        }
                    }
                }
            }
            if (ave) {
                for (long i = 0; i < c; ++i) {
                    yp[i] /= size;
                }
            }
        }
    }
}

/* y = W x (+ b) for `rows` rows of W (row-major, `cols` long): four rows at a time, each summed in
 * 16 lanes (lane l takes columns l, l + 16, ...; then the lanes in order, then the columns left
 * over, then the bias), reading the rows a little ahead (a matrix-vector product is bound by how
 * fast the weights stream in from memory). */
#define LANES 16
#define AHEAD 64 /* floats */
static float lanes_sum(const float *lanes) {
    float s = 0.0f;
    for (int l = 0; l < LANES; ++l) {
        s += lanes[l];
    }
    return s;
}

void matvec(const float *restrict w, const float *restrict x, const float *restrict b,
            float *restrict y, long rows, long cols) {
    long full = cols - cols % LANES;
    long r = 0;
    for (; r + 4 <= rows; r += 4) {
        const float *w0 = w + r * cols, *w1 = w0 + cols, *w2 = w1 + cols, *w3 = w2 + cols;
        float a0[LANES] = {0}, a1[LANES] = {0}, a2[LANES] = {0}, a3[LANES] = {0};
        for (long j = 0; j < full; j += LANES) {
            __builtin_prefetch(w0 + j + AHEAD);
            __builtin_prefetch(w1 + j + AHEAD);
            __builtin_prefetch(w2 + j + AHEAD);
            __builtin_prefetch(w3 + j + AHEAD);
            for (int l = 0; l < LANES; ++l) {
                float v = x[j + l];
                a0[l] += w0[j + l] * v;
                a1[l] += w1[j + l] * v;
                a2[l] += w2[j + l] * v;
                a3[l] += w3[j + l] * v;
            }
        }
        float s[4] = {lanes_sum(a0), lanes_sum(a1), lanes_sum(a2), lanes_sum(a3)};
        for (long j = full; j < cols; ++j) {
            s[0] += w0[j] * x[j];
            s[1] += w1[j] * x[j];
            s[2] += w2[j] * x[j];
            s[3] += w3[j] * x[j];
        }
        for (int i = 0; i < 4; ++i) {
            y[r + i] = b ? s[i] + b[r + i] : s[i];
        }
    }
    for (; r < rows; ++r) {
        const float *wr = w + r * cols;
        float a[LANES] = {0};
        for (long j = 0; j < full; j += LANES) {
            for (int l = 0; l < LANES; ++l) {
                a[l] += wr[j + l] * x[j + l];
            }
        }
        float s = lanes_sum(a);
        for (long j = full; j < cols; ++j) {
            s += wr[j] * x[j];
        }
        y[r] = b ? s + b[r] : s;
    }
}

/* Winograd's F(m x m, 3 x 3) (recaffe/math/winograd.py), its two transforms for the tile rows
 * [first, last) of one channels-last image, `cols` tiles a row, `tiles` = (last - first) * cols.
 * input:  v[f1 n + f2][t][c] = sum_j BT[f2][j] (sum_i BT[f1][i] d[i][j][c]), d the n x n pixels from
 *         (row m - pad_h, col m - pad_w), zero outside the image; tmp holds n * n * c floats.
 * output: y at (row m + i, col m + j) = sum_f2 AT[j][f2] (sum_f1 AT[i][f1] p[f1 n + f2][t]) + bias,
 *         then the ReLU of `slope` (unless relu = 0), for the pixels inside the output; tmp holds
 *         m * n * k floats. Terms with a zero coefficient are skipped (they add zero). */
static void scaled_add(float *restrict acc, const float *restrict src, float coefficient, long count) {
    for (long i = 0; i < count; ++i) {
        acc[i] += coefficient * src[i];
    }
}

static void zero(float *restrict acc, long count) {
    for (long i = 0; i < count; ++i) {
        acc[i] = 0.0f;
    }
}

void winograd_input(const float *restrict x, float *restrict v, const float *restrict bt, long n, long m,
                    long height, long width, long c, long pad_h, long pad_w, long first, long last,
                    long cols, float *restrict tmp) {
    long tiles = (last - first) * cols;
    for (long row = first; row < last; ++row) {
        for (long col = 0; col < cols; ++col) {
            long t = (row - first) * cols + col, top = row * m - pad_h, left = col * m - pad_w;
            for (long f1 = 0; f1 < n; ++f1) {
                for (long j = 0; j < n; ++j) {
                    float *acc = tmp + (f1 * n + j) * c;
                    zero(acc, c);
                    long w = left + j;
                    if (w < 0 || w >= width) {
                        continue;
                    }
                    for (long i = 0; i < n; ++i) {
                        long h = top + i;
                        if (bt[f1 * n + i] != 0.0f && h >= 0 && h < height) {
                            scaled_add(acc, x + (h * width + w) * c, bt[f1 * n + i], c);
                        }
                    }
                }
            }
            for (long f1 = 0; f1 < n; ++f1) {
                for (long f2 = 0; f2 < n; ++f2) {
                    float *out = v + ((f1 * n + f2) * tiles + t) * c;
                    zero(out, c);
                    for (long j = 0; j < n; ++j) {
                        if (bt[f2 * n + j] != 0.0f) {
                            scaled_add(out, tmp + (f1 * n + j) * c, bt[f2 * n + j], c);
                        }
                    }
                }
            }
        }
    }
}

void winograd_output(const float *restrict p, float *restrict y, const float *restrict at,
                     const float *restrict bias, long n, long m, long out_h, long out_w, long k,
                     long first, long last, long cols, int relu, float slope, float *restrict tmp) {
    long tiles = (last - first) * cols;
    for (long row = first; row < last; ++row) {
        for (long col = 0; col < cols; ++col) {
            long t = (row - first) * cols + col;
            for (long i = 0; i < m; ++i) {
                for (long f2 = 0; f2 < n; ++f2) {
                    float *acc = tmp + (i * n + f2) * k;
                    zero(acc, k);
                    for (long f1 = 0; f1 < n; ++f1) {
                        if (at[i * n + f1] != 0.0f) {
                            scaled_add(acc, p + ((f1 * n + f2) * tiles + t) * k, at[i * n + f1], k);
                        }
                    }
                }
            }
            for (long i = 0; i < m && row * m + i < out_h; ++i) {
                for (long j = 0; j < m && col * m + j < out_w; ++j) {
                    float *restrict out = y + ((row * m + i) * out_w + col * m + j) * k;
                    zero(out, k);
                    for (long f2 = 0; f2 < n; ++f2) {
                        if (at[j * n + f2] != 0.0f) {
                            scaled_add(out, tmp + (i * n + f2) * k, at[j * n + f2], k);
                        }
                    }
                    if (bias) {
                        for (long o = 0; o < k; ++o) {
                            out[o] += bias[o];
                        }
                    }
                    if (relu && slope == 0.0f) { /* as PyTorch's clamp: +0 below, NaN kept */
                        for (long o = 0; o < k; ++o) {
                            out[o] = out[o] < 0.0f ? 0.0f : out[o];
                        }
                    } else if (relu) {
                        for (long o = 0; o < k; ++o) {
                            out[o] = out[o] < 0.0f ? out[o] * slope : out[o];
                        }
                    }
                }
            }
        }
    }
}

/* Caffe's softmax of x (outer, channels, inner) along the channels into y (may be x): per
 * position, y = exp(x - max) / sum exp(x - max), the sum taken in channel order. `scratch` holds
 * 2 * inner floats. */
void softmax(const float *x, float *y, long outer, long channels, long inner, float *restrict scratch) {
    float *restrict top = scratch, *restrict sum = scratch + inner;
    for (long o = 0; o < outer; ++o) {
        const float *xo = x + o * channels * inner;
        float *yo = y + o * channels * inner;
        for (long i = 0; i < inner; ++i) {
            top[i] = xo[i];
            sum[i] = 0.0f;
        }
        for (long c = 1; c < channels; ++c) {
            for (long i = 0; i < inner; ++i) {
                top[i] = xo[c * inner + i] > top[i] ? xo[c * inner + i] : top[i];
            }
        }
        for (long c = 0; c < channels; ++c) {
            for (long i = 0; i < inner; ++i) {
                yo[c * inner + i] = expf(xo[c * inner + i] - top[i]);
                sum[i] += yo[c * inner + i];
            }
        }
        for (long c = 0; c < channels; ++c) {
            for (long i = 0; i < inner; ++i) {
                yo[c * inner + i] /= sum[i];
            }
        }
    }
}
