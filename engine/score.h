/* engine/score.h: turning a query and stored (encoded) rows into "smaller is closer" scores, the one
 * place that knows how each metric and encoding is compared. Used by the search scan and by the
 * builder's calibration, so calibration measures exactly what queries will see.
 *
 * Scores: euclidean = squared distance; cosine = 1 - cos; dot = -q.x. ivf_scorer_distance() turns a
 * score into the distance returned to users (euclidean: the square root). With i8, the query is encoded
 * as FORMAT.md describes and scores are those of the encoded vectors.
 * A scorer belongs to one thread; it owns its buffers (ivf_scorer_free accepts a zeroed struct). */
#ifndef S3V_SCORE_H
#define S3V_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "engine/format.h"
#include "engine/kernels.h"

typedef struct ivf_scorer {
    const kern_table *kt;
    ivf_metric metric;
    ivf_encoding encoding;
    uint32_t dim;
    const float *q_offset; /* i8 quantizer (borrowed) */
    float q_scale;
    float *qf;  /* the query, unit length for cosine */
    int8_t *cq; /* i8: the encoded query */
    float sq;   /* i8 inner products: the query's scale */
    float qoff; /* i8 inner products: q . offset */
    int32_t *idist;
    size_t max_rows;
} ivf_scorer;

/* max_rows: the most rows one ivf_scorer_rows call will score. */
S3V_MUST_USE s3v_status ivf_scorer_init(ivf_scorer *s, ivf_metric metric, ivf_encoding encoding, uint32_t dim,
                                        const float *q_offset, float q_scale, size_t max_rows);
void ivf_scorer_free(ivf_scorer *s);

/* Sets the query (dim floats). S3V_ERR_INVALID for NaN/infinity or a zero vector under cosine. */
S3V_MUST_USE s3v_status ivf_scorer_set_query(ivf_scorer *s, const float *q);

/* Scores n <= max_rows stored rows (the vector section of a block, and its inverse norms for cosine). */
void ivf_scorer_rows(ivf_scorer *s, const uint8_t *vectors, const uint8_t *inv_norms, uint32_t n, float *out);

/* Probe order: distances from the query to nlist float32 centroids in the assignment metric (squared
 * euclidean for euclidean, negated inner product otherwise), smaller is nearer. */
void ivf_scorer_centroids(const ivf_scorer *s, const float *centroids, uint32_t nlist, float *out);

/* The distance reported for a score. */
float ivf_scorer_distance(ivf_metric metric, float score);

#endif
