/* engine/topk.c */
#include "engine/topk.h"

#include <math.h>
#include <stdlib.h>

s3v_status topk_init(topk *t, size_t k)
{
    t->k = k;
    t->len = 0;
    t->dist = malloc((k ? k : 1) * sizeof *t->dist);
    t->id = malloc((k ? k : 1) * sizeof *t->id);
    if (!t->dist || !t->id) {
        topk_free(t);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory for top-%zu", k);
    }
    return S3V_OK;
}

void topk_free(topk *t)
{
    if (!t) return;
    free(t->dist);
    free(t->id);
    t->dist = NULL;
    t->id = NULL;
    t->len = 0;
}

void topk_reset(topk *t) { t->len = 0; }

/* a is worse than b: larger distance, or equal distance and larger id */
static inline int worse(float da, uint64_t ia, float db, uint64_t ib)
{
    return da > db || (da == db && ia > ib);
}

float topk_bound(const topk *t) { return t->len < t->k ? INFINITY : t->dist[0]; }

static void sift_down(topk *t, size_t i, size_t n)
{
    float d = t->dist[i];
    uint64_t id = t->id[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && worse(t->dist[c + 1], t->id[c + 1], t->dist[c], t->id[c])) c++;
        if (!worse(t->dist[c], t->id[c], d, id)) break;
        t->dist[i] = t->dist[c];
        t->id[i] = t->id[c];
        i = c;
    }
    t->dist[i] = d;
    t->id[i] = id;
}

int topk_push(topk *t, float d, uint64_t id)
{
    if (t->k == 0) return 0;
    if (t->len < t->k) {
        size_t i = t->len++;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!worse(d, id, t->dist[p], t->id[p])) break;
            t->dist[i] = t->dist[p];
            t->id[i] = t->id[p];
            i = p;
        }
        t->dist[i] = d;
        t->id[i] = id;
        return 1;
    }
    if (!worse(t->dist[0], t->id[0], d, id)) return 0;
    t->dist[0] = d;
    t->id[0] = id;
    sift_down(t, 0, t->len);
    return 1;
}

void topk_sort(topk *t)
{
    /* heap sort: repeatedly move the worst to the end */
    for (size_t n = t->len; n > 1; n--) {
        float d = t->dist[0];
        uint64_t id = t->id[0];
        t->dist[0] = t->dist[n - 1];
        t->id[0] = t->id[n - 1];
        t->dist[n - 1] = d;
        t->id[n - 1] = id;
        sift_down(t, 0, n - 1);
    }
}
