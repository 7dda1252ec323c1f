/* engine/quant.h: the vector encodings of FORMAT.md (f32, f16, i8) for rows and queries.
 *
 * quant_i8 holds the index-wide int8 quantizer (per-dimension offset, one scale). Encoding a row
 * writes `dim` elements of the index encoding; decoding writes floats back (lossy for f16/i8).
 * Query preparation turns an f32 query into what the scan kernels compare against, once per query.
 * Functions are re-entrant; the quantizer is immutable after training. */
#ifndef S3V_QUANT_H
#define S3V_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "engine/format.h"

typedef struct quant_i8 {
    uint32_t dim;
    const float *offset; /* dim, owned by whoever owns the centroids / builder */
    float scale;
} quant_i8;

/* Fits offset/scale from per-dimension minima and maxima (offset must hold dim floats). */
void quant_i8_fit(uint32_t dim, const float *min, const float *max, float *offset, float *scale);

/* Encodes one row of dim floats into `out` (dim * ivf_encoding_size(enc) bytes). For f16 a value
 * outside +-65504 is S3V_ERR_INVALID. q is needed for i8 only. */
S3V_MUST_USE s3v_status quant_encode_row(ivf_encoding enc, const quant_i8 *q, const float *x, uint32_t dim,
                                         uint8_t *out);
/* Decodes one stored row to floats. */
void quant_decode_row(ivf_encoding enc, const quant_i8 *q, const uint8_t *row, uint32_t dim, float *out);

/* i8 query preparation: on the index grid for euclidean (|q-x|^2 ~= scale^2 |cq-cx|^2), or a symmetric
 * per-query code for inner products (q.x ~= q_dot_offset + scale * sq * (cq.cx)). */
void quant_i8_query_l2(const quant_i8 *q, const float *query, int8_t *cq);
void quant_i8_query_ip(const quant_i8 *q, const float *query, int8_t *cq, float *sq, float *q_dot_offset);

#endif
