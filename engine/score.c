/* engine/score.c: query preparation and row scoring for every metric and encoding. */
#include "engine/score.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/le.h"
#include "engine/quant.h"

s3v_status ivf_scorer_init(ivf_scorer *s, ivf_metric metric, ivf_encoding encoding, uint32_t dim,
                           const float *q_offset, float q_scale, size_t max_rows)
{
    memset(s, 0, sizeof *s);
    s->kt = kern_get();
    s->metric = metric;
    s->encoding = encoding;
    s->dim = dim;
    s->q_offset = q_offset;
    s->q_scale = q_scale;
    s->max_rows = max_rows;
    s->qf = malloc((size_t)dim * sizeof(float));
    s->cq = malloc(dim ? dim : 1);
    s->idist = malloc((max_rows ? max_rows : 1) * sizeof(int32_t));
    if (!s->qf || !s->cq || !s->idist) {
        ivf_scorer_free(s);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    }
    return S3V_OK;
}

void ivf_scorer_free(ivf_scorer *s)
{
    if (!s) return;
    free(s->qf);
    free(s->cq);
    free(s->idist);
    s->qf = NULL;
    s->cq = NULL;
    s->idist = NULL;
}

s3v_status ivf_scorer_set_query(ivf_scorer *s, const float *q)
{
    double ss = 0;
    for (uint32_t j = 0; j < s->dim; j++) {
        if (!isfinite(q[j]))
            return s3v_errorf(S3V_ERR_INVALID, "query vector element %u is %s", j,
                              isnan(q[j]) ? "NaN" : "infinite");
        ss += (double)q[j] * q[j];
    }
    memcpy(s->qf, q, (size_t)s->dim * sizeof(float));
    if (s->metric == IVF_METRIC_COSINE) {
        if (!(ss > 0))
            return s3v_errorf(S3V_ERR_INVALID,
                              "a zero query vector has no direction under the cosine metric");
        float inv = (float)(1.0 / sqrt(ss));
        for (uint32_t j = 0; j < s->dim; j++) s->qf[j] *= inv;
    }
    if (s->encoding == IVF_ENC_I8) {
        quant_i8 qz = {s->dim, s->q_offset, s->q_scale};
        if (s->metric == IVF_METRIC_EUCLIDEAN)
            quant_i8_query_l2(&qz, s->qf, s->cq);
        else
            quant_i8_query_ip(&qz, s->qf, s->cq, &s->sq, &s->qoff);
    }
    return S3V_OK;
}

void ivf_scorer_rows(ivf_scorer *s, const uint8_t *vectors, const uint8_t *inv_norms, uint32_t n, float *out)
{
    const kern_table *kt = s->kt;
    uint32_t d = s->dim;
    int l2 = s->metric == IVF_METRIC_EUCLIDEAN;
    switch (s->encoding) {
    case IVF_ENC_F32:
        if (l2)
            kt->l2sq_f32_rows(s->qf, (const float *)vectors, d, n, out);
        else
            kt->dot_f32_rows(s->qf, (const float *)vectors, d, n, out);
        break;
    case IVF_ENC_F16:
        if (l2)
            kt->l2sq_f16_rows(s->qf, (const uint16_t *)vectors, d, n, out);
        else
            kt->dot_f16_rows(s->qf, (const uint16_t *)vectors, d, n, out);
        break;
    case IVF_ENC_I8:
        if (l2) {
            kt->l2sq_i8_rows(s->cq, (const int8_t *)vectors, d, n, s->idist);
            float s2 = s->q_scale * s->q_scale;
            for (uint32_t r = 0; r < n; r++) out[r] = s2 * (float)s->idist[r];
        } else {
            kt->dot_i8_rows(s->cq, (const int8_t *)vectors, d, n, s->idist);
            float f = s->q_scale * s->sq;
            for (uint32_t r = 0; r < n; r++) out[r] = s->qoff + f * (float)s->idist[r];
        }
        break;
    }
    if (s->metric == IVF_METRIC_COSINE) {
        for (uint32_t r = 0; r < n; r++) out[r] = 1.0f - out[r] * le_get_f32(inv_norms + 4 * (size_t)r);
    } else if (s->metric == IVF_METRIC_DOT) {
        for (uint32_t r = 0; r < n; r++) out[r] = -out[r];
    }
}

void ivf_scorer_centroids(const ivf_scorer *s, const float *centroids, uint32_t nlist, float *out)
{
    if (s->metric == IVF_METRIC_EUCLIDEAN) {
        s->kt->l2sq_f32_rows(s->qf, centroids, s->dim, nlist, out);
    } else {
        s->kt->dot_f32_rows(s->qf, centroids, s->dim, nlist, out);
        for (uint32_t c = 0; c < nlist; c++) out[c] = -out[c];
    }
}

float ivf_scorer_distance(ivf_metric metric, float score)
{
    if (metric == IVF_METRIC_EUCLIDEAN) return score > 0 ? sqrtf(score) : 0.0f;
    return score;
}
