/* engine/quant.c: f16 / i8 encodings. */
#include "engine/quant.h"

#include <math.h>
#include <string.h>

#include "engine/kernels.h"

void quant_i8_fit(uint32_t dim, const float *min, const float *max, float *offset, float *scale)
{
    float s = 0;
    for (uint32_t j = 0; j < dim; j++) {
        offset[j] = (min[j] + max[j]) * 0.5f;
        float r = (max[j] - min[j]) / 254.0f;
        if (r > s) s = r;
    }
    *scale = s > 0 ? s : 1.0f;
}

static int8_t clamp_code(float v)
{
    long r = lrintf(v);
    return (int8_t)(r > 127 ? 127 : r < -127 ? -127 : r);
}

s3v_status quant_encode_row(ivf_encoding enc, const quant_i8 *q, const float *x, uint32_t dim, uint8_t *out)
{
    switch (enc) {
    case IVF_ENC_F32: memcpy(out, x, (size_t)dim * 4); return S3V_OK;
    case IVF_ENC_F16:
        for (uint32_t j = 0; j < dim; j++) {
            if (fabsf(x[j]) > 65504.0f)
                return s3v_errorf(S3V_ERR_INVALID, "value %g at element %u does not fit the f16 encoding",
                                  x[j], j);
            uint16_t h = kern_f32_to_f16_one(x[j]);
            memcpy(out + 2 * (size_t)j, &h, 2);
        }
        return S3V_OK;
    case IVF_ENC_I8: {
        float inv = 1.0f / q->scale;
        for (uint32_t j = 0; j < dim; j++) out[j] = (uint8_t)clamp_code((x[j] - q->offset[j]) * inv);
        return S3V_OK;
    }
    }
    return s3v_errorf(S3V_ERR_INTERNAL, "unknown encoding");
}

void quant_decode_row(ivf_encoding enc, const quant_i8 *q, const uint8_t *row, uint32_t dim, float *out)
{
    switch (enc) {
    case IVF_ENC_F32: memcpy(out, row, (size_t)dim * 4); break;
    case IVF_ENC_F16:
        for (uint32_t j = 0; j < dim; j++) {
            uint16_t h;
            memcpy(&h, row + 2 * (size_t)j, 2);
            out[j] = kern_f16_to_f32_one(h);
        }
        break;
    case IVF_ENC_I8:
        for (uint32_t j = 0; j < dim; j++) out[j] = q->offset[j] + q->scale * (float)(int8_t)row[j];
        break;
    }
}

void quant_i8_query_l2(const quant_i8 *q, const float *query, int8_t *cq)
{
    float inv = 1.0f / q->scale;
    for (uint32_t j = 0; j < q->dim; j++) cq[j] = clamp_code((query[j] - q->offset[j]) * inv);
}

void quant_i8_query_ip(const quant_i8 *q, const float *query, int8_t *cq, float *sq, float *q_dot_offset)
{
    float m = 0;
    double od = 0;
    for (uint32_t j = 0; j < q->dim; j++) {
        if (fabsf(query[j]) > m) m = fabsf(query[j]);
        od += (double)query[j] * q->offset[j];
    }
    float s = m > 0 ? m / 127.0f : 1.0f;
    for (uint32_t j = 0; j < q->dim; j++) cq[j] = clamp_code(query[j] / s);
    *sq = s;
    *q_dot_offset = (float)od;
}
