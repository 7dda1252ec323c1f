/* engine/kernels/select.c: choose the kernel table once at start-up. */
#include "common/crc32c.h"
#include "common/log.h"
#include "engine/kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#if defined(S3VEC_HAVE_AVX2)
const kern_table *kern_avx2_table(void); /* avx2.c */
#endif
#if defined(S3VEC_HAVE_NEON)
const kern_table *kern_neon_table(void); /* neon.c */
#endif

static const kern_table *chosen;

const kern_table *kern_avx2(void)
{
#if defined(S3VEC_HAVE_AVX2)
    /* F16C from CPUID (leaf 1, ECX bit 29): clang 14's __builtin_cpu_supports does not know "f16c" */
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c) return kern_avx2_table();
#endif
    return NULL;
}

const kern_table *kern_neon(void)
{
#if defined(S3VEC_HAVE_NEON)
    return kern_neon_table(); /* NEON (ASIMD) is mandatory on aarch64 */
#else
    return NULL;
#endif
}

const kern_table *kern_init(int force_scalar)
{
    if (chosen) return chosen;
    const kern_table *t = NULL;
    if (!force_scalar) {
        t = kern_avx2();
        if (!t) t = kern_neon();
    }
    if (!t) t = kern_scalar();
    const char *crc = s3v_crc32c_init(force_scalar);
    s3v_log(S3V_LOG_INFO, "kernels: %s%s, crc32c: %s", t->name, force_scalar ? " (forced)" : "", crc);
    chosen = t;
    return t;
}

const kern_table *kern_get(void) { return chosen ? chosen : kern_scalar(); }
