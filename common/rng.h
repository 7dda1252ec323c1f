/* common/rng.h: a small deterministic PRNG (xoshiro256**, seeded with splitmix64) so that builds
 * are reproducible under --seed. Each thread or task owns its own state. */
#ifndef S3V_RNG_H
#define S3V_RNG_H

#include <stdint.h>

typedef struct s3v_rng {
    uint64_t s[4];
} s3v_rng;

void s3v_rng_seed(s3v_rng *r, uint64_t seed);
uint64_t s3v_rng_next(s3v_rng *r);
/* Uniform in [0, n) without modulo bias; n > 0. */
uint64_t s3v_rng_below(s3v_rng *r, uint64_t n);
/* Uniform in [0, 1). */
double s3v_rng_unit(s3v_rng *r);

#endif
