/* common/storage.h: the byte-storage interface under every index.
 *
 * The engine reads and writes index objects only through this interface. Two backends implement
 * it: a local folder (common/storage_local.c) and S3 (s3/s3_storage.c). Keys are '/'-separated
 * names relative to the storage root (a folder, or s3://bucket/prefix/), e.g. "idx/manifest".
 * Backends reject keys that are empty, absolute, contain "..", "." or empty segments, NUL or
 * control bytes, or exceed S3V_KEY_MAX bytes (S3V_ERR_INVALID) so that no key escapes the root.
 *
 * Ownership: the caller owns every s3v_buf it passes; the backend appends to it. Ranged reads hand
 * each completed range to a callback as soon as it arrives (so decoding overlaps the network); the
 * callback may move the bytes out with s3v_buf_take(), otherwise the backend frees them.
 *
 * Threading: one s3v_storage is used by one thread at a time (the builder gives each worker its own
 * or serialises calls). Callbacks run on the calling thread.
 *
 * Deadlines: absolute s3v_now_ns() values (S3V_NO_DEADLINE for none). A backend returns
 * S3V_ERR_TIMEOUT when it cannot finish in time; retries happen inside the backend. */
#ifndef S3V_STORAGE_H
#define S3V_STORAGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/status.h"

#define S3V_KEY_MAX  900 /* bytes in a storage key, root prefix excluded */
#define S3V_ETAG_MAX 128

typedef struct s3v_storage s3v_storage;

/* What a backend knows about an object after a read or write. */
typedef struct s3v_obj_info {
    uint64_t size;
    char etag[S3V_ETAG_MAX]; /* opaque version tag, "" when unknown; used for If-Match */
} s3v_obj_info;

typedef enum s3v_put_mode {
    S3V_PUT_ALWAYS = 0,        /* create or overwrite */
    S3V_PUT_IF_NONE_MATCH = 1, /* create only; S3V_ERR_PRECONDITION if the key exists */
    S3V_PUT_IF_MATCH = 2,      /* replace only the version with `etag`; S3V_ERR_PRECONDITION otherwise
                                  (S3V_ERR_NOT_FOUND when the object is gone) */
} s3v_put_mode;

typedef struct s3v_put_cond {
    s3v_put_mode mode;
    const char *etag; /* for S3V_PUT_IF_MATCH */
} s3v_put_cond;

typedef struct s3v_range {
    const char *key;
    uint64_t offset;
    uint64_t size; /* > 0; a range past the end of the object is S3V_ERR_CORRUPT (short read) */
} s3v_range;

/* Called once per range, in completion order. `st` is the range's outcome; on S3V_OK `data` holds
 * exactly range.size bytes. Return S3V_OK to continue; any other status cancels the outstanding
 * ranges and becomes the result of get_ranges. */
typedef s3v_status (*s3v_range_cb)(void *arg, size_t range_index, s3v_status st, s3v_buf *data);

typedef struct s3v_list_req {
    const char *prefix;      /* keys starting with this ("" for all) */
    const char *delimiter;   /* NULL, or "/" to roll deeper keys up into common prefixes */
    const char *start_after; /* NULL, or list keys strictly after this one (lexicographic bytes) */
    size_t max_keys;         /* 0 = no limit; otherwise stop after this many entries */
} s3v_list_req;

/* One listed entry, in ascending byte order of key. is_prefix = 1 for a common prefix (ends in the
 * delimiter, size 0). Return 0 to continue, 1 to stop the listing early (not an error). */
typedef int (*s3v_list_cb)(void *arg, const char *key, uint64_t size, int is_prefix);

typedef struct s3v_storage_ops {
    const char *name; /* "local" or "s3" */
    /* Whole object into `out` (appended; out->max bounds it: S3V_ERR_TOO_LARGE). info may be NULL. */
    s3v_status (*get)(s3v_storage *st, const char *key, uint64_t deadline_ns, s3v_buf *out,
                      s3v_obj_info *info);
    /* Many ranges, possibly of different objects, fetched concurrently. */
    s3v_status (*get_ranges)(s3v_storage *st, const s3v_range *ranges, size_t count, uint64_t deadline_ns,
                             s3v_range_cb cb, void *arg);
    /* Write a whole object from memory. info (may be NULL) receives the new etag. */
    s3v_status (*put)(s3v_storage *st, const char *key, const uint8_t *data, size_t size,
                      const s3v_put_cond *cond, uint64_t deadline_ns, s3v_obj_info *info);
    /* Write a whole object from a local file, streamed (S3: multipart for large files). */
    s3v_status (*put_file)(s3v_storage *st, const char *key, const char *path, const s3v_put_cond *cond,
                           uint64_t deadline_ns, s3v_obj_info *info);
    /* Size and etag of an object without its bytes. */
    s3v_status (*head)(s3v_storage *st, const char *key, uint64_t deadline_ns, s3v_obj_info *info);
    s3v_status (*list)(s3v_storage *st, const s3v_list_req *req, uint64_t deadline_ns, s3v_list_cb cb,
                       void *arg);
    /* Deleting a missing key is S3V_OK (as S3). */
    s3v_status (*del)(s3v_storage *st, const char *key, uint64_t deadline_ns);
    /* Human-readable location of a key for messages ("/data/idx/manifest", "s3://b/p/idx/m"). */
    void (*describe)(s3v_storage *st, const char *key, char *out, size_t out_size);
    void (*close)(s3v_storage *st);
} s3v_storage_ops;

/* Every backend's handle starts with this header. */
struct s3v_storage {
    const s3v_storage_ops *ops;
};

/* Validates a key as described above. */
S3V_MUST_USE s3v_status s3v_storage_key_check(const char *key);

/* Opens a local-folder backend rooted at `root` (created if missing when create = 1).
 * *out is written only on success; close with s3v_storage_close(). */
S3V_MUST_USE s3v_status s3v_storage_local_open(const char *root, int create, s3v_storage **out);

/* Thin wrappers. */
static inline s3v_status s3v_storage_get(s3v_storage *st, const char *key, uint64_t deadline_ns, s3v_buf *out,
                                         s3v_obj_info *info)
{
    return st->ops->get(st, key, deadline_ns, out, info);
}
static inline s3v_status s3v_storage_get_ranges(s3v_storage *st, const s3v_range *r, size_t n,
                                                uint64_t deadline_ns, s3v_range_cb cb, void *arg)
{
    return st->ops->get_ranges(st, r, n, deadline_ns, cb, arg);
}
static inline s3v_status s3v_storage_put(s3v_storage *st, const char *key, const uint8_t *data, size_t size,
                                         const s3v_put_cond *cond, uint64_t deadline_ns, s3v_obj_info *info)
{
    return st->ops->put(st, key, data, size, cond, deadline_ns, info);
}
static inline s3v_status s3v_storage_put_file(s3v_storage *st, const char *key, const char *path,
                                              const s3v_put_cond *cond, uint64_t deadline_ns,
                                              s3v_obj_info *info)
{
    return st->ops->put_file(st, key, path, cond, deadline_ns, info);
}
static inline s3v_status s3v_storage_head(s3v_storage *st, const char *key, uint64_t deadline_ns,
                                          s3v_obj_info *info)
{
    return st->ops->head(st, key, deadline_ns, info);
}
static inline s3v_status s3v_storage_list(s3v_storage *st, const s3v_list_req *req, uint64_t deadline_ns,
                                          s3v_list_cb cb, void *arg)
{
    return st->ops->list(st, req, deadline_ns, cb, arg);
}
static inline s3v_status s3v_storage_del(s3v_storage *st, const char *key, uint64_t deadline_ns)
{
    return st->ops->del(st, key, deadline_ns);
}
static inline void s3v_storage_describe(s3v_storage *st, const char *key, char *out, size_t n)
{
    st->ops->describe(st, key, out, n);
}
static inline void s3v_storage_close(s3v_storage *st)
{
    if (st) st->ops->close(st);
}

#endif
