/* SPDX-License-Identifier: MIT */
/*
 * A byte-level Performer language model served in C: the model train.py trained with
 * performer-pytorch's PerformerLM (model.npz), its embeddings, rotary positions, LayerNorms
 * and GELU MLPs in plain C, and its causal FAVOR+ attention through rfjit: one causal plan per
 * layer (estimator "positive", the layer's trained projection matrix, compat
 * "performer-pytorch") and one decode state per layer, which takes the prompt in one prefill
 * and then one step per generated token.
 *
 *     performer_lm MODEL.npz logits TEXT OUT.npy          logits of every position of TEXT
 *     performer_lm MODEL.npz generate PROMPT N OUT        N greedy tokens after PROMPT:
 *                                                         OUT.bin (the bytes), OUT.npy (the
 *                                                         logits each one was chosen from)
 *
 * TEXT and PROMPT are files read as bytes (at most the model's 512 positions in all). Prints
 * tokens per second: the prefill's (logits) or the whole generation's, prompt included.
 * RFJIT_LM_THREADS sets rfjit's thread count (default 1); the C layers run on one thread.
 */
#include "../common/npy_io.h"

#include <rfjit.h>

#include <math.h>
#include <time.h>

enum { MAX_TENSORS = 128, MAX_LAYERS = 16 };

/* The matmul in AVX2 where the CPU has it, picked at load time, and in the baseline ISA
 * elsewhere: twice the vector width for a third of the prefill, with the same sums. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define VECTOR_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define VECTOR_CLONES
#endif

/* One float32 array of the .npz, copied out of the archive (members are not aligned). */
typedef struct npz_tensor {
    char name[96];
    float *data;
    int64_t shape[4];
    int rank;
} npz_tensor;

typedef struct npz_file {
    unsigned char *bytes;
    size_t size;
    npz_tensor t[MAX_TENSORS];
    int count;
} npz_file;

typedef struct layer {
    const float *ln1_w, *ln1_b, *wq, *wk, *wv, *wo, *proj;
    const float *ln2_w, *ln2_b, *w1, *b1, *w2, *b2;
    float *wq_t, *wk_t, *wv_t, *wo_t, *w1_t, *w2_t; /* (in, out) copies for row-major axpys */
    rfjit_plan *plan;
    rfjit_decode *state;
} layer;

typedef struct model {
    int dim, depth, heads, dim_head, features, hidden, vocab, max_len;
    const float *tok_emb, *pos_emb, *rot_emb, *norm_w, *norm_b, *out_b;
    float *out_t;
    layer l[MAX_LAYERS];
} model;

/* Activations of up to max_len rows. */
typedef struct work {
    float *x, *h, *q, *k, *v, *att, *ff, *logits;
} work;

static double clock_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double now(void)
{
    return clock_s(CLOCK_MONOTONIC);
}

/* CPU seconds of every thread of the process: on a shared machine the wall time also counts
 * the time other programs held the cores. */
static double cpu_now(void)
{
    return clock_s(CLOCK_PROCESS_CPUTIME_ID);
}

static int fail_msg(const char *what, const char *detail)
{
    fprintf(stderr, "performer_lm: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static int fail_rfjit(rfjit_ctx *ctx, const char *what, rfjit_status s)
{
    fprintf(stderr, "performer_lm: %s: %s (%s)\n", what, rfjit_status_string(s),
            rfjit_ctx_last_error(ctx));
    return 1;
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    long n;
    if (f && fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (buf = malloc((size_t)n + 1)) && fread(buf, 1, (size_t)n, f) == (size_t)n) {
        *size = (size_t)n;
        fclose(f);
        return buf;
    }
    free(buf);
    if (f)
        fclose(f);
    return NULL;
}

static uint32_t le16(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static uint32_t le32(const unsigned char *p)
{
    return le16(p) | le16(p + 2) << 16;
}

/* The shape of an .npy header of '<f4' C-order data; 0 if it is anything else. */
static int npy_header_shape(const char *h, size_t len, int64_t shape[4], int *rank)
{
    char buf[512];
    if (len >= sizeof buf)
        return 0;
    memcpy(buf, h, len);
    buf[len] = 0;
    const char *p = strstr(buf, "'shape'");
    if (!strstr(buf, "'<f4'") || !strstr(buf, "'fortran_order': False") || !p)
        return 0;
    p = strchr(p, '(');
    *rank = 0;
    while (p && *rank < 4) {
        char *end;
        const long long v = strtoll(p + 1, &end, 10);
        if (end == p + 1)
            break;
        if (v < 0 || v > INT32_MAX)
            return 0; /* keeps the element count's product far from overflowing */
        shape[(*rank)++] = v;
        p = strchr(end, ',');
    }
    return 1;
}

/* One stored (uncompressed) zip member at bytes[*at] holding an .npy; advances *at past it. */
static int npz_member(npz_file *z, size_t *at)
{
    const unsigned char *p = z->bytes + *at;
    if (z->size - *at < 30 || le32(p) != 0x04034b50u || le16(p + 8) != 0 || (le16(p + 6) & 8))
        return 0; /* not a local header, compressed, or sizes in a trailing descriptor */
    const size_t nlen = le16(p + 26), xlen = le16(p + 28), off = *at + 30 + nlen + xlen;
    npz_tensor *t = &z->t[z->count];
    if (z->count == MAX_TENSORS || off + 10 > z->size || nlen < 5 || nlen - 4 >= sizeof t->name ||
        memcmp(z->bytes + off, "\x93NUMPY\x01", 7) != 0)
        return 0;
    memcpy(t->name, p + 30, nlen - 4); /* without ".npy" */
    t->name[nlen - 4] = 0;
    const size_t hlen = le16(z->bytes + off + 8);
    if (off + 10 + hlen > z->size ||
        !npy_header_shape((const char *)z->bytes + off + 10, hlen, t->shape, &t->rank))
        return 0;
    size_t count = 1;
    for (int i = 0; i < t->rank; i++)
        count *= (size_t)t->shape[i];
    const size_t data = off + 10 + hlen;
    if (count > (z->size - data) / sizeof(float) || !(t->data = malloc(count * sizeof(float))))
        return 0;
    memcpy(t->data, z->bytes + data, count * sizeof(float));
    z->count++;
    *at = data + count * sizeof(float);
    return 1;
}

/* np.savez's archive: stored members, each an .npy, then the central directory. */
static int npz_load(npz_file *z, const char *path)
{
    if (!(z->bytes = read_all(path, &z->size)))
        return fail_msg("cannot read", path);
    size_t at = 0;
    while (at + 4 <= z->size && le32(z->bytes + at) == 0x04034b50u)
        if (!npz_member(z, &at))
            return fail_msg("not an np.savez archive of float32 arrays", path);
    return z->count ? 0 : fail_msg("no arrays in", path);
}

static void npz_free(npz_file *z)
{
    for (int i = 0; i < z->count; i++)
        free(z->t[i].data);
    free(z->bytes);
}

/* The named array with exactly the given shape (rank 1 or 2; cols 0 for rank 1). */
static const float *npz_get(const npz_file *z, const char *name, int64_t rows, int64_t cols)
{
    for (int i = 0; i < z->count; i++) {
        const npz_tensor *t = &z->t[i];
        if (strcmp(t->name, name) != 0)
            continue;
        if ((cols == 0 && t->rank == 1 && t->shape[0] == rows) ||
            (cols > 0 && t->rank == 2 && t->shape[0] == rows && t->shape[1] == cols))
            return t->data;
        fprintf(stderr, "performer_lm: %s has the wrong shape\n", name);
        return NULL;
    }
    fprintf(stderr, "performer_lm: %s is missing\n", name);
    return NULL;
}

static const npz_tensor *npz_find(const npz_file *z, const char *name)
{
    for (int i = 0; i < z->count; i++)
        if (strcmp(z->t[i].name, name) == 0)
            return &z->t[i];
    return NULL;
}

/* torch's Linear weight is (out, in); the matmul below streams rows of its transpose. */
static float *transpose(const float *w, int rows, int cols)
{
    float *t = w ? malloc((size_t)rows * (size_t)cols * sizeof *t) : NULL;
    for (int r = 0; t && r < rows; r++)
        for (int c = 0; c < cols; c++)
            t[(size_t)c * (size_t)rows + (size_t)r] = w[(size_t)r * (size_t)cols + (size_t)c];
    return t;
}

static const float *layer_get(const npz_file *z, int i, const char *suffix, int64_t rows,
                              int64_t cols)
{
    char name[96];
    snprintf(name, sizeof name, "performer.net.layers.%d.%s", i, suffix);
    return npz_get(z, name, rows, cols);
}

static int layer_load(layer *l, const npz_file *z, int i, const model *m)
{
    const int d = m->dim, in = m->heads * m->dim_head, hid = m->hidden;
    l->ln1_w = layer_get(z, i, "0.norm.weight", d, 0);
    l->ln1_b = layer_get(z, i, "0.norm.bias", d, 0);
    l->wq = layer_get(z, i, "0.fn.to_q.weight", in, d);
    l->wk = layer_get(z, i, "0.fn.to_k.weight", in, d);
    l->wv = layer_get(z, i, "0.fn.to_v.weight", in, d);
    l->wo = layer_get(z, i, "0.fn.to_out.weight", d, in);
    l->proj = layer_get(z, i, "0.fn.fast_attention.projection_matrix", m->features, m->dim_head);
    l->ln2_w = layer_get(z, i, "1.norm.weight", d, 0);
    l->ln2_b = layer_get(z, i, "1.norm.bias", d, 0);
    l->w1 = layer_get(z, i, "1.fn.fn.w1.weight", hid, d);
    l->b1 = layer_get(z, i, "1.fn.fn.w1.bias", hid, 0);
    l->w2 = layer_get(z, i, "1.fn.fn.w2.weight", d, hid);
    l->b2 = layer_get(z, i, "1.fn.fn.w2.bias", d, 0);
    l->wq_t = transpose(l->wq, in, d);
    l->wk_t = transpose(l->wk, in, d);
    l->wv_t = transpose(l->wv, in, d);
    l->wo_t = transpose(l->wo, d, in);
    l->w1_t = transpose(l->w1, hid, d);
    l->w2_t = transpose(l->w2, d, hid);
    return l->ln1_w && l->ln1_b && l->proj && l->ln2_w && l->ln2_b && l->b1 && l->b2 && l->wq_t &&
                   l->wk_t && l->wv_t && l->wo_t && l->w1_t && l->w2_t
               ? 0
               : 1;
}

/* Sizes from the arrays themselves: heads = inner width / projection columns. */
static int model_sizes(model *m, const npz_file *z)
{
    const npz_tensor *emb = npz_find(z, "token_emb.weight");
    const npz_tensor *proj =
        npz_find(z, "performer.net.layers.0.0.fn.fast_attention.projection_matrix");
    const npz_tensor *q = npz_find(z, "performer.net.layers.0.0.fn.to_q.weight");
    const npz_tensor *w1 = npz_find(z, "performer.net.layers.0.1.fn.fn.w1.weight");
    const npz_tensor *pos = npz_find(z, "pos_emb.emb");
    if (!emb || !proj || !q || !w1 || !pos || emb->rank != 2 || proj->rank != 2 || q->rank != 2 ||
        w1->rank != 2 || pos->rank != 2 || proj->shape[0] < 1 || proj->shape[1] < 2 ||
        proj->shape[1] % 2 != 0)
        return fail_msg("model.npz lacks the arrays of a PerformerLM", NULL);
    m->vocab = (int)emb->shape[0];
    m->dim = (int)emb->shape[1];
    m->features = (int)proj->shape[0];
    m->dim_head = (int)proj->shape[1];
    m->heads = (int)(q->shape[0] / m->dim_head);
    m->hidden = (int)w1->shape[0];
    m->max_len = (int)pos->shape[0];
    char name[96];
    for (m->depth = 0; m->depth < MAX_LAYERS; m->depth++) {
        snprintf(name, sizeof name, "performer.net.layers.%d.0.norm.weight", m->depth);
        if (!npz_find(z, name))
            break;
    }
    if (m->depth == 0 || m->vocab != 256 || m->heads * m->dim_head != q->shape[0])
        return fail_msg("model.npz is not a byte-level PerformerLM this program serves", NULL);
    return 0;
}

static int model_load(model *m, const npz_file *z)
{
    memset(m, 0, sizeof *m);
    if (model_sizes(m, z))
        return 1;
    m->tok_emb = npz_get(z, "token_emb.weight", m->vocab, m->dim);
    m->pos_emb = npz_get(z, "pos_emb.emb", m->max_len, m->dim);
    m->rot_emb = npz_get(z, "layer_pos_emb.emb", m->max_len, m->dim_head);
    m->norm_w = npz_get(z, "norm.weight", m->dim, 0);
    m->norm_b = npz_get(z, "norm.bias", m->dim, 0);
    m->out_b = npz_get(z, "to_out.bias", m->vocab, 0);
    m->out_t = transpose(npz_get(z, "to_out.weight", m->vocab, m->dim), m->vocab, m->dim);
    if (!m->tok_emb || !m->pos_emb || !m->rot_emb || !m->norm_w || !m->norm_b || !m->out_b ||
        !m->out_t)
        return 1;
    for (int i = 0; i < m->depth; i++)
        if (layer_load(&m->l[i], z, i, m))
            return 1;
    return 0;
}

/* Each layer's attention: a causal FAVOR+ plan with that layer's trained projection and
 * performer-pytorch's numerics, and its decode state (one sequence of `heads` heads). */
static rfjit_status attention_create(rfjit_ctx *ctx, model *m)
{
    rfjit_status s = RFJIT_OK;
    for (int i = 0; i < m->depth && s == RFJIT_OK; i++) {
        rfjit_attn_desc a = RFJIT_ATTN_DESC_INIT;
        a.d = m->dim_head;
        a.m = m->features;
        a.causal = 1;
        a.estimator = "positive";
        a.projection = RFJIT_PROJ_USER;
        a.projection_matrix = m->l[i].proj;
        a.compat = "performer-pytorch";
        s = rfjit_plan_create(ctx, &a, &m->l[i].plan);
        if (s == RFJIT_OK)
            s = rfjit_decode_create(m->l[i].plan, 1, m->heads, &m->l[i].state);
    }
    return s;
}

static void model_free(model *m)
{
    for (int i = 0; i < m->depth; i++) {
        layer *l = &m->l[i];
        rfjit_decode_destroy(l->state);
        rfjit_plan_destroy(l->plan);
        free(l->wq_t);
        free(l->wk_t);
        free(l->wv_t);
        free(l->wo_t);
        free(l->w1_t);
        free(l->w2_t);
    }
    free(m->out_t);
}

/* y (n, out) = x (n, in) wt (in, out) + b: four rows share each streamed row of wt, and the
 * innermost loop is a contiguous axpy the compiler vectorises. */
VECTOR_CLONES static void matmul(float *restrict y, const float *restrict x,
                                 const float *restrict wt, const float *restrict b, int n, int in,
                                 int out)
{
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        float *y0 = y + (size_t)i * out, *y1 = y0 + out, *y2 = y1 + out, *y3 = y2 + out;
        const float *x0 = x + (size_t)i * in, *x1 = x0 + in, *x2 = x1 + in, *x3 = x2 + in;
        for (int j = 0; j < out; j++)
            y0[j] = y1[j] = y2[j] = y3[j] = b ? b[j] : 0.0f;
        for (int k = 0; k < in; k++) {
            const float *w = wt + (size_t)k * out;
            const float a0 = x0[k], a1 = x1[k], a2 = x2[k], a3 = x3[k];
            for (int j = 0; j < out; j++) {
                y0[j] += a0 * w[j];
                y1[j] += a1 * w[j];
                y2[j] += a2 * w[j];
                y3[j] += a3 * w[j];
            }
        }
    }
    for (; i < n; i++) {
        float *yi = y + (size_t)i * out;
        const float *xi = x + (size_t)i * in;
        for (int j = 0; j < out; j++)
            yi[j] = b ? b[j] : 0.0f;
        for (int k = 0; k < in; k++)
            for (int j = 0; j < out; j++)
                yi[j] += xi[k] * wt[(size_t)k * out + j];
    }
}

/* torch.nn.LayerNorm (eps 1e-5, biased variance); the moments in double. */
static void layer_norm(float *y, const float *x, const float *w, const float *b, int n, int d)
{
    for (int i = 0; i < n; i++) {
        const float *xi = x + (size_t)i * d;
        double mean = 0, var = 0;
        for (int c = 0; c < d; c++)
            mean += xi[c];
        mean /= d;
        for (int c = 0; c < d; c++)
            var += (xi[c] - mean) * (xi[c] - mean);
        const double inv = 1.0 / sqrt(var / d + 1e-5);
        for (int c = 0; c < d; c++)
            y[(size_t)i * d + c] = (float)((xi[c] - mean) * inv) * w[c] + b[c];
    }
}

/* nn.GELU's exact form, 0.5 x (1 + erf(x / sqrt 2)). */
static void gelu(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)(0.5 * x[i] * (1.0 + erf(x[i] * 0.70710678118654752440)));
}

/* performer-pytorch's apply_rotary_pos_emb: the row of position p of layer_pos_emb is
 * [sin_0 .. sin_{d/2-1}, cos_0 .. cos_{d/2-1}], and pair (2i, 2i+1) turns by angle i. */
static void rotary(float *t, const float *table, int n, int pos0, int heads, int dh)
{
    for (int r = 0; r < n; r++) {
        const float *sn = table + (size_t)(pos0 + r) * dh, *cs = sn + dh / 2;
        for (int h = 0; h < heads; h++) {
            float *v = t + ((size_t)r * heads + h) * dh;
            for (int i = 0; i < dh / 2; i++) {
                const float a = v[2 * i], b = v[2 * i + 1];
                v[2 * i] = a * cs[i] + (-b) * sn[i];
                v[2 * i + 1] = b * cs[i] + a * sn[i];
            }
        }
    }
}

/* rows (n, heads * dh), token-major, as the (1, heads, n, dh) view rfjit reads */
static rfjit_tensor_ex heads_view(float *rows, int n, int heads, int dh)
{
    const rfjit_tensor t = {rows, {1, heads, n, dh}, {0, dh, (int64_t)heads * dh, 1}};
    return rfjit_tensor_ex_of(&t);
}

/* Rows pos0 .. pos0 + n - 1 of one layer's attention: a prefill when the state is empty and
 * n > 1 tokens come, a decode step for one token after it. */
static rfjit_status attend(layer *l, const model *m, work *w, int n, int first)
{
    rfjit_tensor_ex q = heads_view(w->q, n, m->heads, m->dim_head);
    rfjit_tensor_ex k = heads_view(w->k, n, m->heads, m->dim_head);
    rfjit_tensor_ex v = heads_view(w->v, n, m->heads, m->dim_head);
    rfjit_tensor_ex o = heads_view(w->att, n, m->heads, m->dim_head);
    rfjit_decode_args a = RFJIT_DECODE_ARGS_INIT;
    a.q = &q, a.k = &k, a.v = &v, a.out = &o;
    return first ? rfjit_decode_prefill(l->state, &a) : rfjit_decode_step_ex(l->state, &a);
}

static void add(float *x, const float *y, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] += y[i];
}

/* One PreNorm block, attention then MLP, on rows pos0 .. pos0 + n - 1 of w->x. */
static rfjit_status block(layer *l, const model *m, work *w, int n, int pos0, int first)
{
    const int d = m->dim, in = m->heads * m->dim_head;
    layer_norm(w->h, w->x, l->ln1_w, l->ln1_b, n, d);
    matmul(w->q, w->h, l->wq_t, NULL, n, d, in);
    matmul(w->k, w->h, l->wk_t, NULL, n, d, in);
    matmul(w->v, w->h, l->wv_t, NULL, n, d, in);
    rotary(w->q, m->rot_emb, n, pos0, m->heads, m->dim_head);
    rotary(w->k, m->rot_emb, n, pos0, m->heads, m->dim_head);
    const rfjit_status s = attend(l, m, w, n, first);
    if (s != RFJIT_OK)
        return s;
    matmul(w->h, w->att, l->wo_t, NULL, n, in, d);
    add(w->x, w->h, (size_t)n * d);
    layer_norm(w->h, w->x, l->ln2_w, l->ln2_b, n, d);
    matmul(w->ff, w->h, l->w1_t, l->b1, n, d, m->hidden);
    gelu(w->ff, (size_t)n * m->hidden);
    matmul(w->h, w->ff, l->w2_t, l->b2, n, m->hidden, d);
    add(w->x, w->h, (size_t)n * d);
    return RFJIT_OK;
}

/* Logits of tokens at positions pos0 .. pos0 + n - 1 into w->logits, each layer's decode
 * state advanced past them. */
static rfjit_status forward(model *m, work *w, const unsigned char *tok, int n, int pos0)
{
    const int d = m->dim;
    for (int r = 0; r < n; r++)
        for (int c = 0; c < d; c++)
            w->x[(size_t)r * d + c] = m->tok_emb[(size_t)tok[r] * d + c] +
                                      m->pos_emb[(size_t)(pos0 + r) * d + c];
    for (int i = 0; i < m->depth; i++) {
        const rfjit_status s = block(&m->l[i], m, w, n, pos0, pos0 == 0);
        if (s != RFJIT_OK)
            return s;
    }
    layer_norm(w->h, w->x, m->norm_w, m->norm_b, n, d);
    matmul(w->logits, w->h, m->out_t, m->out_b, n, d, m->vocab);
    return RFJIT_OK;
}

static int work_alloc(work *w, const model *m)
{
    const size_t L = (size_t)m->max_len, in = (size_t)m->heads * (size_t)m->dim_head;
    const size_t wide = (size_t)(m->hidden > m->vocab ? m->hidden : m->vocab);
    const size_t d = (size_t)m->dim > in ? (size_t)m->dim : in;
    w->x = malloc(L * d * sizeof(float));
    w->h = malloc(L * d * sizeof(float));
    w->q = malloc(L * in * sizeof(float));
    w->k = malloc(L * in * sizeof(float));
    w->v = malloc(L * in * sizeof(float));
    w->att = malloc(L * in * sizeof(float));
    w->ff = malloc(L * wide * sizeof(float));
    w->logits = malloc(L * (size_t)m->vocab * sizeof(float));
    return w->x && w->h && w->q && w->k && w->v && w->att && w->ff && w->logits ? 0 : 1;
}

static void work_free(work *w)
{
    free(w->x);
    free(w->h);
    free(w->q);
    free(w->k);
    free(w->v);
    free(w->att);
    free(w->ff);
    free(w->logits);
}

static int argmax(const float *x, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best])
            best = i;
    return best;
}

static int run_logits(rfjit_ctx *ctx, model *m, work *w, const unsigned char *text, int n,
                      const char *out)
{
    const double t0 = now(), c0 = cpu_now();
    const rfjit_status s = forward(m, w, text, n, 0);
    const double t = now() - t0, c = cpu_now() - c0;
    if (s != RFJIT_OK)
        return fail_rfjit(ctx, "prefill", s);
    printf("performer_lm: prefill %d tokens in %.3f s (%.3f s CPU): %.0f tok/s\n", n, t, c, n / t);
    const int64_t shape[2] = {n, m->vocab};
    return npy_save(out, w->logits, shape, 2) ? fail_msg("cannot write", out) : 0;
}

/* Greedy decoding: the prompt in one prefill, then one step per token; the logits each token
 * was picked from go to logits (N, vocab). */
static rfjit_status generate(model *m, work *w, unsigned char *seq, int p, int count, float *logits)
{
    const int V = m->vocab;
    rfjit_status s = forward(m, w, seq, p, 0);
    const float *last = w->logits + (size_t)(p - 1) * V;
    for (int i = 0; i < count && s == RFJIT_OK; i++) {
        memcpy(logits + (size_t)i * V, last, (size_t)V * sizeof(float));
        seq[p + i] = (unsigned char)argmax(last, V);
        if (i + 1 < count)
            s = forward(m, w, seq + p + i, 1, p + i);
        last = w->logits;
    }
    return s;
}

static int run_generate(rfjit_ctx *ctx, model *m, work *w, const unsigned char *prompt, int p,
                        int count, const char *out)
{
    unsigned char *seq = malloc((size_t)(p + count));
    float *logits = malloc((size_t)count * (size_t)m->vocab * sizeof(float));
    if (!seq || !logits) {
        free(seq);
        free(logits);
        return fail_msg("out of memory", NULL);
    }
    memcpy(seq, prompt, (size_t)p);
    const double t0 = now(), c0 = cpu_now();
    const rfjit_status s = generate(m, w, seq, p, count, logits);
    const double t = now() - t0, c = cpu_now() - c0;
    int rc = s != RFJIT_OK ? fail_rfjit(ctx, "generation", s) : 0;
    if (rc == 0) {
        printf("performer_lm: generated %d tokens after a %d-token prompt in %.3f s (%.3f s "
               "CPU): %.1f tok/s\n",
               count, p, t, c, count / t);
        char path[4096];
        snprintf(path, sizeof path, "%s.bin", out);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(seq + p, 1, (size_t)count, f) != (size_t)count)
            rc = fail_msg("cannot write", path);
        if (f && fclose(f) != 0 && rc == 0)
            rc = fail_msg("cannot write", path);
        const int64_t shape[2] = {count, m->vocab};
        snprintf(path, sizeof path, "%s.npy", out);
        if (rc == 0 && npy_save(path, logits, shape, 2))
            rc = fail_msg("cannot write", path);
    }
    free(seq);
    free(logits);
    return rc;
}

static int usage(void)
{
    fprintf(stderr, "usage: performer_lm MODEL.npz logits TEXT OUT.npy\n"
                    "       performer_lm MODEL.npz generate PROMPT N OUT\n");
    return 2;
}

/* Checks the mode's arguments against the model, then runs it. */
static int run(rfjit_ctx *ctx, model *m, work *w, int argc, char **argv)
{
    const int logits = strcmp(argv[2], "logits") == 0, gen = strcmp(argv[2], "generate") == 0;
    if (!(logits && argc == 5) && !(gen && argc == 6))
        return usage();
    size_t n = 0;
    unsigned char *text = read_all(argv[3], &n);
    if (!text)
        return fail_msg("cannot read", argv[3]);
    const long count = gen ? strtol(argv[4], NULL, 10) : 0;
    int rc;
    if (n == 0)
        rc = fail_msg("empty text", argv[3]);
    else if (logits)
        rc = n > (size_t)m->max_len ? fail_msg("text longer than the model's positions", argv[3])
                                    : run_logits(ctx, m, w, text, (int)n, argv[4]);
    else
        rc = count < 1 || n + (size_t)count > (size_t)m->max_len + 1
                 ? fail_msg("prompt + N must be 1 .. the model's positions + 1", argv[4])
                 : run_generate(ctx, m, w, text, (int)n, (int)count, argv[5]);
    free(text);
    return rc;
}

int main(int argc, char **argv)
{
    (void)npy_load; /* the shared header's reader: this program reads its arrays from an .npz */
    if (argc < 5)
        return usage();
    npz_file z = {0};
    model m = {0};
    work w = {0};
    rfjit_ctx *ctx = NULL;
    rfjit_ctx_desc cd = RFJIT_CTX_DESC_INIT;
    const char *threads = getenv("RFJIT_LM_THREADS");
    cd.threads = threads ? atoi(threads) : 1;
    int rc = npz_load(&z, argv[1]) || model_load(&m, &z) || work_alloc(&w, &m);
    rfjit_status s = RFJIT_OK;
    if (rc == 0 && (s = rfjit_ctx_create(&cd, &ctx)) != RFJIT_OK)
        rc = fail_rfjit(NULL, "context", s);
    if (rc == 0 && (s = attention_create(ctx, &m)) != RFJIT_OK)
        rc = fail_rfjit(ctx, "attention plans", s);
    if (rc == 0)
        rc = run(ctx, &m, &w, argc, argv);
    model_free(&m);
    rfjit_ctx_destroy(ctx);
    work_free(&w);
    npz_free(&z);
    return rc;
}
