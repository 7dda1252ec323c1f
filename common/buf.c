/* common/buf.c: bounded growable buffer. */
#include "common/buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>

void s3v_buf_init(s3v_buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

s3v_status s3v_buf_reserve(s3v_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return s3v_errorf(S3V_ERR_TOO_LARGE, "buffer limit of %zu bytes exceeded", b->max);
    size_t need = b->len + extra;
    if (need <= b->cap && b->ptr) return S3V_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max) cap = b->max;
    uint8_t *p = realloc(b->ptr, cap + 1);
    if (!p) return s3v_errorf(S3V_ERR_NOMEM, "out of memory growing a buffer to %zu bytes", cap);
    b->ptr = p;
    b->cap = cap;
    b->ptr[b->len] = 0;
    return S3V_OK;
}

s3v_status s3v_buf_append(s3v_buf *b, const void *data, size_t size)
{
    S3V_TRY(s3v_buf_reserve(b, size));
    if (size) memcpy(b->ptr + b->len, data, size);
    b->len += size;
    b->ptr[b->len] = 0;
    return S3V_OK;
}

s3v_status s3v_buf_append_str(s3v_buf *b, const char *s) { return s3v_buf_append(b, s, strlen(s)); }

s3v_status s3v_buf_printf(s3v_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return s3v_errorf(S3V_ERR_INTERNAL, "bad format string");
    S3V_TRY(s3v_buf_reserve(b, (size_t)n));
    va_start(ap, fmt);
    vsnprintf((char *)b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return S3V_OK;
}

void s3v_buf_reset(s3v_buf *b)
{
    b->len = 0;
    if (b->ptr) b->ptr[0] = 0;
}

void s3v_buf_free(s3v_buf *b)
{
    if (!b) return;
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
}

uint8_t *s3v_buf_take(s3v_buf *b, size_t *size)
{
    uint8_t *p = b->ptr;
    if (size) *size = b->len;
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}

void s3v_alloc_tune(void)
{
#ifdef __GLIBC__
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
#endif
}
