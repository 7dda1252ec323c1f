/* common/storage_local.c: the local-folder storage backend.
 *
 * A key maps to <root>/<key>. Writes go to a temporary file in the destination folder and are
 * published with rename(2) (replace), link(2) (create-only: atomic If-None-Match) or, for
 * If-Match, a compare-and-rename under an flock(2) on <root>/.s3vec.lock, so concurrent writers in
 * several processes get the same guarantees as S3's conditional writes. The etag of a file is
 * "<inode>-<mtime ns>-<size>", which changes on every publish. errno never leaves this file. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/rng.h"
#include "common/clock.h"
#include "common/storage.h"

#define TMP_PREFIX ".s3v-tmp-"
#define LOCK_NAME  ".s3vec.lock"

typedef struct local_storage {
    s3v_storage base;
    char *root; /* no trailing slash */
    s3v_rng rng;
} local_storage;

static s3v_status errno_status(int e, const char *what, const char *path)
{
    s3v_status st = e == ENOENT || e == ENOTDIR ? S3V_ERR_NOT_FOUND
                    : e == EACCES || e == EPERM ? S3V_ERR_ACCESS_DENIED
                    : e == ENOMEM               ? S3V_ERR_NOMEM
                    : e == EFBIG || e == ENOSPC ? S3V_ERR_IO
                                                : S3V_ERR_IO;
    return s3v_errorf(st, "%s %s: %s", what, path, strerror(e));
}

s3v_status s3v_storage_key_check(const char *key)
{
    if (!key || !*key) return s3v_errorf(S3V_ERR_INVALID, "empty storage key");
    size_t len = strlen(key);
    if (len > S3V_KEY_MAX)
        return s3v_errorf(S3V_ERR_INVALID, "storage key longer than %d bytes", S3V_KEY_MAX);
    if (key[0] == '/') return s3v_errorf(S3V_ERR_INVALID, "storage key must be relative");
    const char *seg = key;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c && c < 0x20) return s3v_errorf(S3V_ERR_INVALID, "storage key contains a control byte");
        if (c == 0x7f) return s3v_errorf(S3V_ERR_INVALID, "storage key contains a control byte");
        if (c == '\\') return s3v_errorf(S3V_ERR_INVALID, "storage key contains a backslash");
        if (c == '/' || c == 0) {
            size_t n = (size_t)(key + i - seg);
            if (n == 0 && c == '/') return s3v_errorf(S3V_ERR_INVALID, "storage key has an empty segment");
            if (n == 0 && c == 0 && i > 0) return s3v_errorf(S3V_ERR_INVALID, "storage key ends with '/'");
            if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
                return s3v_errorf(S3V_ERR_INVALID, "storage key has a '.' or '..' segment");
            seg = key + i + 1;
        }
    }
    return S3V_OK;
}

static s3v_status full_path(local_storage *ls, const char *key, char *out, size_t out_size)
{
    S3V_TRY(s3v_storage_key_check(key));
    int n = snprintf(out, out_size, "%s/%s", ls->root, key);
    if (n < 0 || (size_t)n >= out_size) return s3v_errorf(S3V_ERR_INVALID, "path too long for key %s", key);
    return S3V_OK;
}

static void etag_of(const struct stat *sb, char *out)
{
    snprintf(out, S3V_ETAG_MAX, "%llx-%llx-%llx", (unsigned long long)sb->st_ino,
             (unsigned long long)sb->st_mtim.tv_sec * 1000000000ull + (unsigned long long)sb->st_mtim.tv_nsec,
             (unsigned long long)sb->st_size);
}

static s3v_status mkdirs_for(const char *path)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST) return errno_status(errno, "cannot create folder", tmp);
        *p = '/';
    }
    return S3V_OK;
}

static s3v_status local_get(s3v_storage *st, const char *key, uint64_t deadline_ns, s3v_buf *out,
                            s3v_obj_info *info)
{
    local_storage *ls = (local_storage *)st;
    char path[4096];
    S3V_TRY(full_path(ls, key, path, sizeof path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return errno_status(errno, "cannot open", path);
    struct stat sb;
    s3v_status rc = S3V_OK;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        rc = s3v_errorf(S3V_ERR_NOT_FOUND, "not a regular file: %s", path);
        goto done;
    }
    size_t size = (size_t)sb.st_size;
    rc = s3v_buf_reserve(out, size);
    if (rc != S3V_OK) goto done;
    size_t got = 0;
    while (got < size) {
        ssize_t r = pread(fd, out->ptr + out->len + got, size - got, (off_t)got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            rc = errno_status(errno, "cannot read", path);
            goto done;
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    if (got != size) {
        rc = s3v_errorf(S3V_ERR_IO, "short read of %s", path);
        goto done;
    }
    out->len += size;
    out->ptr[out->len] = 0;
    if (info) {
        info->size = size;
        etag_of(&sb, info->etag);
    }
done:
    close(fd);
    return rc;
}

static s3v_status local_get_ranges(s3v_storage *st, const s3v_range *ranges, size_t count,
                                   uint64_t deadline_ns, s3v_range_cb cb, void *arg)
{
    local_storage *ls = (local_storage *)st;
    for (size_t i = 0; i < count; i++) {
        if (deadline_ns != S3V_NO_DEADLINE && s3v_now_ns() > deadline_ns)
            return s3v_errorf(S3V_ERR_TIMEOUT, "deadline passed reading ranges");
        char path[4096];
        s3v_buf b;
        s3v_buf_init(&b, ranges[i].size + 1);
        s3v_status rs = full_path(ls, ranges[i].key, path, sizeof path);
        int fd = -1;
        if (rs == S3V_OK) {
            fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0) rs = errno_status(errno, "cannot open", path);
        }
        if (rs == S3V_OK) rs = s3v_buf_reserve(&b, ranges[i].size);
        if (rs == S3V_OK) {
            size_t got = 0, want = ranges[i].size;
            while (got < want) {
                ssize_t r = pread(fd, b.ptr + got, want - got, (off_t)(ranges[i].offset + got));
                if (r < 0 && errno == EINTR) continue;
                if (r <= 0) break;
                got += (size_t)r;
            }
            if (got != want)
                rs = s3v_errorf(S3V_ERR_CORRUPT, "%s: range %llu+%llu is past the end of the object", path,
                                (unsigned long long)ranges[i].offset, (unsigned long long)want);
            else {
                b.len = want;
                b.ptr[want] = 0;
            }
        }
        if (fd >= 0) close(fd);
        s3v_status cs = cb(arg, i, rs, &b);
        s3v_buf_free(&b);
        if (cs != S3V_OK) return cs;
    }
    return S3V_OK;
}

/* Creates a temp file beside `path`; writes its name into tmp. */
static s3v_status open_tmp(local_storage *ls, const char *path, char *tmp, size_t tmp_size, int *fd_out)
{
    S3V_TRY(mkdirs_for(path));
    const char *slash = strrchr(path, '/');
    int dir_len = (int)(slash - path);
    for (int attempt = 0; attempt < 16; attempt++) {
        snprintf(tmp, tmp_size, "%.*s/" TMP_PREFIX "%d-%016llx", dir_len, path, (int)getpid(),
                 (unsigned long long)(s3v_rng_next(&ls->rng) ^ s3v_now_ns()));
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd >= 0) {
            *fd_out = fd;
            return S3V_OK;
        }
        if (errno != EEXIST) return errno_status(errno, "cannot create", tmp);
    }
    return s3v_errorf(S3V_ERR_IO, "cannot create a temporary file beside %s", path);
}

static s3v_status write_all(int fd, const uint8_t *p, size_t n, const char *path)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno_status(errno, "cannot write", path);
        p += w;
        n -= (size_t)w;
    }
    return S3V_OK;
}

/* Publishes tmp as path under the condition; removes tmp in every case. */
static s3v_status publish(local_storage *ls, const char *tmp, const char *path, const s3v_put_cond *cond,
                          s3v_obj_info *info)
{
    s3v_status rc = S3V_OK;
    s3v_put_mode mode = cond ? cond->mode : S3V_PUT_ALWAYS;
    int lock_fd = -1;
    if (mode == S3V_PUT_IF_NONE_MATCH) {
        if (link(tmp, path) != 0)
            rc = errno == EEXIST ? s3v_errorf(S3V_ERR_PRECONDITION, "%s already exists", path)
                                 : errno_status(errno, "cannot publish", path);
        unlink(tmp);
    } else {
        if (mode == S3V_PUT_IF_MATCH) {
            char lock_path[4096];
            snprintf(lock_path, sizeof lock_path, "%s/" LOCK_NAME, ls->root);
            lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
            if (lock_fd < 0 || flock(lock_fd, LOCK_EX) != 0) {
                rc = errno_status(errno, "cannot lock", lock_path);
                unlink(tmp);
                goto done;
            }
            struct stat sb;
            char cur[S3V_ETAG_MAX];
            if (stat(path, &sb) != 0) {
                rc = errno == ENOENT ? s3v_errorf(S3V_ERR_NOT_FOUND, "%s does not exist", path)
                                     : errno_status(errno, "cannot stat", path);
                unlink(tmp);
                goto done;
            }
            etag_of(&sb, cur);
            if (!cond->etag || strcmp(cur, cond->etag) != 0) {
                rc = s3v_errorf(S3V_ERR_PRECONDITION, "%s changed since it was read", path);
                unlink(tmp);
                goto done;
            }
        }
        if (rename(tmp, path) != 0) {
            rc = errno_status(errno, "cannot publish", path);
            unlink(tmp);
        }
    }
    if (rc == S3V_OK && info) {
        struct stat sb;
        if (stat(path, &sb) == 0) {
            info->size = (uint64_t)sb.st_size;
            etag_of(&sb, info->etag);
        }
    }
done:
    if (lock_fd >= 0) close(lock_fd); /* releases the flock */
    return rc;
}

static s3v_status local_put(s3v_storage *st, const char *key, const uint8_t *data, size_t size,
                            const s3v_put_cond *cond, uint64_t deadline_ns, s3v_obj_info *info)
{
    local_storage *ls = (local_storage *)st;
    char path[4096], tmp[4200];
    int fd;
    S3V_TRY(full_path(ls, key, path, sizeof path));
    S3V_TRY(open_tmp(ls, path, tmp, sizeof tmp, &fd));
    s3v_status rc = write_all(fd, data, size, tmp);
    if (close(fd) != 0 && rc == S3V_OK) rc = errno_status(errno, "cannot write", tmp);
    if (rc != S3V_OK) {
        unlink(tmp);
        return rc;
    }
    return publish(ls, tmp, path, cond, info);
}

static s3v_status local_put_file(s3v_storage *st, const char *key, const char *src, const s3v_put_cond *cond,
                                 uint64_t deadline_ns, s3v_obj_info *info)
{
    local_storage *ls = (local_storage *)st;
    char path[4096], tmp[4200];
    int fd;
    S3V_TRY(full_path(ls, key, path, sizeof path));
    int in = open(src, O_RDONLY | O_CLOEXEC);
    if (in < 0) return errno_status(errno, "cannot open", src);
    s3v_status rc = open_tmp(ls, path, tmp, sizeof tmp, &fd);
    if (rc != S3V_OK) {
        close(in);
        return rc;
    }
    uint8_t *chunk = malloc(1 << 20);
    if (!chunk) rc = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    while (rc == S3V_OK) {
        ssize_t r = read(in, chunk, 1 << 20);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) rc = errno_status(errno, "cannot read", src);
        if (r <= 0) break;
        rc = write_all(fd, chunk, (size_t)r, tmp);
    }
    free(chunk);
    close(in);
    if (close(fd) != 0 && rc == S3V_OK) rc = errno_status(errno, "cannot write", tmp);
    if (rc != S3V_OK) {
        unlink(tmp);
        return rc;
    }
    return publish(ls, tmp, path, cond, info);
}

static s3v_status local_head(s3v_storage *st, const char *key, uint64_t deadline_ns, s3v_obj_info *info)
{
    local_storage *ls = (local_storage *)st;
    char path[4096];
    struct stat sb;
    S3V_TRY(full_path(ls, key, path, sizeof path));
    if (stat(path, &sb) != 0) return errno_status(errno, "cannot stat", path);
    if (!S_ISREG(sb.st_mode)) return s3v_errorf(S3V_ERR_NOT_FOUND, "not a regular file: %s", path);
    if (info) {
        info->size = (uint64_t)sb.st_size;
        etag_of(&sb, info->etag);
    }
    return S3V_OK;
}

typedef struct key_list {
    char **keys;
    uint64_t *sizes;
    size_t len, cap;
} key_list;

static s3v_status key_list_add(key_list *kl, const char *key, uint64_t size)
{
    if (kl->len == kl->cap) {
        size_t cap = kl->cap ? kl->cap * 2 : 64;
        char **k = realloc(kl->keys, cap * sizeof *k);
        if (!k) return s3v_errorf(S3V_ERR_NOMEM, "out of memory listing");
        kl->keys = k;
        uint64_t *s = realloc(kl->sizes, cap * sizeof *s);
        if (!s) return s3v_errorf(S3V_ERR_NOMEM, "out of memory listing");
        kl->sizes = s;
        kl->cap = cap;
    }
    kl->keys[kl->len] = strdup(key);
    if (!kl->keys[kl->len]) return s3v_errorf(S3V_ERR_NOMEM, "out of memory listing");
    kl->sizes[kl->len++] = size;
    return S3V_OK;
}

/* Walks <root>/<rel> recursively, adding every regular file's key. */
static s3v_status walk(local_storage *ls, const char *rel, key_list *kl, int depth)
{
    char dir[4096];
    if (depth > 64) return S3V_OK;
    snprintf(dir, sizeof dir, "%s%s%s", ls->root, *rel ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) return (errno == ENOENT || errno == ENOTDIR) ? S3V_OK : errno_status(errno, "cannot list", dir);
    s3v_status rc = S3V_OK;
    struct dirent *e;
    while (rc == S3V_OK && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* ".", "..", temp files and the lock file */
        char key[4096];
        snprintf(key, sizeof key, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", ls->root, key);
        struct stat sb;
        if (stat(path, &sb) != 0) continue; /* vanished meanwhile */
        if (S_ISDIR(sb.st_mode))
            rc = walk(ls, key, kl, depth + 1);
        else if (S_ISREG(sb.st_mode))
            rc = key_list_add(kl, key, (uint64_t)sb.st_size);
    }
    closedir(d);
    return rc;
}

static int cmp_key_index(const void *a, const void *b, void *keys)
{
    char **k = keys;
    return strcmp(k[*(const size_t *)a], k[*(const size_t *)b]);
}

static s3v_status local_list(s3v_storage *st, const s3v_list_req *req, uint64_t deadline_ns, s3v_list_cb cb,
                             void *arg)
{
    local_storage *ls = (local_storage *)st;
    const char *prefix = req->prefix ? req->prefix : "";
    if (strstr(prefix, "..")) return s3v_errorf(S3V_ERR_INVALID, "list prefix contains '..'");
    char rel[4096];
    const char *slash = strrchr(prefix, '/');
    snprintf(rel, sizeof rel, "%.*s", slash ? (int)(slash - prefix) : 0, prefix);
    key_list kl = {0};
    s3v_status rc = walk(ls, rel, &kl, 0);
    if (rc != S3V_OK) goto done;
    size_t *order = malloc((kl.len ? kl.len : 1) * sizeof *order);
    if (!order) {
        rc = s3v_errorf(S3V_ERR_NOMEM, "out of memory listing");
        goto done;
    }
    for (size_t i = 0; i < kl.len; i++) order[i] = i;
    qsort_r(order, kl.len, sizeof *order, cmp_key_index, kl.keys);
    size_t plen = strlen(prefix), emitted = 0;
    char last_common[4096] = "";
    for (size_t oi = 0; oi < kl.len; oi++) {
        const char *key = kl.keys[order[oi]];
        if (strncmp(key, prefix, plen) != 0) continue;
        const char *emit = key;
        int is_prefix = 0;
        char common[4096];
        if (req->delimiter && *req->delimiter) {
            const char *d = strstr(key + plen, req->delimiter);
            if (d) {
                snprintf(common, sizeof common, "%.*s", (int)(d - key + strlen(req->delimiter)), key);
                if (strcmp(common, last_common) == 0) continue;
                snprintf(last_common, sizeof last_common, "%s", common);
                emit = common;
                is_prefix = 1;
            }
        }
        if (req->start_after && strcmp(emit, req->start_after) <= 0) continue;
        if (req->max_keys && emitted >= req->max_keys) break;
        emitted++;
        if (cb(arg, emit, is_prefix ? 0 : kl.sizes[order[oi]], is_prefix)) break;
    }
    free(order);
done:
    for (size_t i = 0; i < kl.len; i++) free(kl.keys[i]);
    free(kl.keys);
    free(kl.sizes);
    return rc;
}

static s3v_status local_del(s3v_storage *st, const char *key, uint64_t deadline_ns)
{
    local_storage *ls = (local_storage *)st;
    char path[4096];
    S3V_TRY(full_path(ls, key, path, sizeof path));
    if (unlink(path) != 0 && errno != ENOENT) return errno_status(errno, "cannot delete", path);
    /* remove now-empty parent folders up to the root, as S3 has no folders */
    size_t root_len = strlen(ls->root);
    char *slash;
    while ((slash = strrchr(path, '/')) != NULL && (size_t)(slash - path) > root_len) {
        *slash = 0;
        if (rmdir(path) != 0) break;
    }
    return S3V_OK;
}

static void local_describe(s3v_storage *st, const char *key, char *out, size_t out_size)
{
    local_storage *ls = (local_storage *)st;
    snprintf(out, out_size, "%s/%s", ls->root, key ? key : "");
}

static void local_close(s3v_storage *st)
{
    local_storage *ls = (local_storage *)st;
    free(ls->root);
    free(ls);
}

static const s3v_storage_ops local_ops = {
    .name = "local",
    .get = local_get,
    .get_ranges = local_get_ranges,
    .put = local_put,
    .put_file = local_put_file,
    .head = local_head,
    .list = local_list,
    .del = local_del,
    .describe = local_describe,
    .close = local_close,
};

s3v_status s3v_storage_local_open(const char *root, int create, s3v_storage **out)
{
    if (!root || !*root) return s3v_errorf(S3V_ERR_INVALID, "empty folder name");
    size_t n = strlen(root);
    while (n > 1 && root[n - 1] == '/') n--;
    if (n >= 3000) return s3v_errorf(S3V_ERR_INVALID, "folder name too long");
    struct stat sb;
    char path[3100];
    snprintf(path, sizeof path, "%.*s", (int)n, root);
    if (stat(path, &sb) != 0) {
        if (errno != ENOENT || !create) return errno_status(errno, "cannot open folder", path);
        char probe[3200];
        snprintf(probe, sizeof probe, "%s/x", path);
        S3V_TRY(mkdirs_for(probe));
    } else if (!S_ISDIR(sb.st_mode)) {
        return s3v_errorf(S3V_ERR_INVALID, "%s is not a folder", path);
    }
    local_storage *ls = calloc(1, sizeof *ls);
    if (!ls) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    ls->root = strdup(path);
    if (!ls->root) {
        free(ls);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    }
    ls->base.ops = &local_ops;
    s3v_rng_seed(&ls->rng, s3v_now_ns() ^ (uint64_t)getpid());
    *out = &ls->base;
    return S3V_OK;
}
