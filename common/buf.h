/* common/buf.h: a growable byte buffer with a hard cap (curl's dynbuf).
 *
 * Every growing buffer in s3vec is an s3v_buf whose `max` is set at init: the 6 MB Lambda payload,
 * the largest object or range, the largest response. Appending past max fails with
 * S3V_ERR_TOO_LARGE and leaves the buffer unchanged. The buffer owns `ptr`; s3v_buf_free() releases
 * it and accepts a zeroed or already-freed buffer. Contents are kept NUL-terminated (the NUL is not
 * counted in len), so text can be passed to string functions. Not thread-safe. */
#ifndef S3V_BUF_H
#define S3V_BUF_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

typedef struct s3v_buf {
    uint8_t *ptr; /* NULL until the first append */
    size_t len;   /* bytes in use */
    size_t cap;   /* bytes allocated (excluding the terminating NUL) */
    size_t max;   /* hard cap on len */
} s3v_buf;

void s3v_buf_init(s3v_buf *b, size_t max);
/* Ensures room for `extra` more bytes. */
S3V_MUST_USE s3v_status s3v_buf_reserve(s3v_buf *b, size_t extra);
S3V_MUST_USE s3v_status s3v_buf_append(s3v_buf *b, const void *data, size_t size);
S3V_MUST_USE s3v_status s3v_buf_append_str(s3v_buf *b, const char *s);
S3V_MUST_USE s3v_status s3v_buf_printf(s3v_buf *b, const char *fmt, ...) S3V_PRINTF(2, 3);
/* Sets len to 0, keeps the memory. */
void s3v_buf_reset(s3v_buf *b);
void s3v_buf_free(s3v_buf *b);
/* Moves the memory out: returns ptr (caller frees with free()), writes len to *size, resets b
 * to empty (max kept). Returns NULL for an empty buffer. */
uint8_t *s3v_buf_take(s3v_buf *b, size_t *size);

/* Process-wide allocator policy for programs that download and free many cluster-sized buffers (main()
 * of bootstrap/ and cli/ call it first): allocations up to 64 MiB come from the heap instead of fresh
 * mmap()s, and freed memory is kept (not trimmed back to the kernel) up to 1 GiB, so the next query
 * reuses pages instead of faulting them in again (page faults were 30% of a cold query's CPU in
 * bench/results/s3.md). A no-op outside glibc. */
void s3v_alloc_tune(void);

#endif
