/* engine/topk.h: a bounded max-heap keeping the k smallest (distance, id) pairs.
 *
 * Ties on distance are broken by the smaller id, so results are deterministic. The heap owns its
 * arrays; topk_free accepts a zeroed struct. One thread per heap. */
#ifndef S3V_TOPK_H
#define S3V_TOPK_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct topk {
    size_t k;
    size_t len;
    float *dist;
    uint64_t *id;
} topk;

S3V_MUST_USE s3v_status topk_init(topk *t, size_t k);
void topk_free(topk *t);
void topk_reset(topk *t);

/* The worst kept distance, or +infinity while fewer than k are kept. */
float topk_bound(const topk *t);

/* Keeps (d, id) if it is among the k best so far. Returns 1 when kept. */
int topk_push(topk *t, float d, uint64_t id);

/* Sorts the kept pairs ascending (by distance, then id) in place; the heap is then no longer a heap
 * until topk_reset. */
void topk_sort(topk *t);

#endif
