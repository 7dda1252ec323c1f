/* engine/input.c: streaming readers for .fvecs, .npy and JSON Lines build inputs. */
#include "engine/input.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "common/le.h"
#include "engine/filter.h"
#include "engine/format.h"

#define LINE_MAX_SIZE (16u << 20) /* one JSON Lines record */

struct vec_reader {
    vec_format format;
    char *path;
    char *keys_path;
    FILE *f;
    FILE *keys;
    uint32_t dim;
    uint64_t count_hint;
    uint64_t row;
    long data_start; /* npy: offset of the first row */
    float *vec;      /* dim floats */
    char keybuf[IVF_KEY_MAX + 2];
    char *line; /* JSON Lines: current line */
    size_t line_cap;
    s3v_buf meta_text; /* JSON Lines: minified metadata of the current record */
    const char *const *non_filterable;
    size_t non_filterable_len;
    cJSON *pending; /* JSON Lines: the first record, parsed at open to learn dim */
    uint64_t line_no;
};

static s3v_status row_error(const vec_reader *r, const char *fmt, const char *detail)
{
    return s3v_errorf(S3V_ERR_INVALID, "%s: row %llu: %s%s", r->path, (unsigned long long)r->row + 1, fmt,
                      detail ? detail : "");
}

s3v_status vec_key_check(const uint8_t *k, size_t n)
{
    if (n == 0) return s3v_errorf(S3V_ERR_INVALID, "empty key");
    if (n > IVF_KEY_MAX) return s3v_errorf(S3V_ERR_INVALID, "key longer than %d bytes", IVF_KEY_MAX);
    for (size_t i = 0; i < n;) {
        uint8_t c = k[i];
        size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (c == 0) return s3v_errorf(S3V_ERR_INVALID, "key contains a NUL byte");
        if (len == 0 || i + len > n) return s3v_errorf(S3V_ERR_INVALID, "key is not valid UTF-8");
        uint32_t cp = len == 1 ? c : c & (0x7f >> len);
        for (size_t j = 1; j < len; j++) {
            if ((k[i + j] & 0xc0) != 0x80) return s3v_errorf(S3V_ERR_INVALID, "key is not valid UTF-8");
            cp = (cp << 6) | (k[i + j] & 0x3f);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
            return s3v_errorf(S3V_ERR_INVALID, "key is not valid UTF-8");
        i += len;
    }
    return S3V_OK;
}

static const char *ext_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    return dot ? dot + 1 : "";
}

static s3v_status open_file(const char *path, FILE **out)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        return s3v_errorf(e == ENOENT ? S3V_ERR_NOT_FOUND : S3V_ERR_IO, "cannot open %s: %s", path,
                          strerror(e));
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    *out = f;
    return S3V_OK;
}

/* Parses the .npy header: only little-endian float32, C order, 2-D. */
static s3v_status npy_header(vec_reader *r)
{
    uint8_t pre[10];
    if (fread(pre, 1, 10, r->f) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0)
        return s3v_errorf(S3V_ERR_INVALID, "%s: not a .npy file", r->path);
    uint32_t hlen;
    long start;
    if (pre[6] == 1) {
        hlen = le_get_u16(pre + 8);
        start = 10;
    } else if (pre[6] == 2 || pre[6] == 3) {
        uint8_t extra[2];
        if (fread(extra, 1, 2, r->f) != 2)
            return s3v_errorf(S3V_ERR_INVALID, "%s: truncated .npy header", r->path);
        uint8_t b4[4] = {pre[8], pre[9], extra[0], extra[1]};
        hlen = le_get_u32(b4);
        start = 12;
    } else {
        return s3v_errorf(S3V_ERR_INVALID, "%s: unsupported .npy version %u", r->path, pre[6]);
    }
    if (hlen > 65536) return s3v_errorf(S3V_ERR_INVALID, "%s: .npy header too long", r->path);
    char *h = calloc(1, hlen + 1);
    if (!h) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    s3v_status st = S3V_OK;
    if (fread(h, 1, hlen, r->f) != hlen) {
        st = s3v_errorf(S3V_ERR_INVALID, "%s: truncated .npy header", r->path);
        goto done;
    }
    if (!strstr(h, "'descr': '<f4'") && !strstr(h, "'descr':'<f4'")) {
        st = s3v_errorf(S3V_ERR_INVALID, "%s: .npy dtype must be little-endian float32 ('<f4')", r->path);
        goto done;
    }
    if (strstr(h, "'fortran_order': True")) {
        st = s3v_errorf(S3V_ERR_INVALID, "%s: .npy must be in C order", r->path);
        goto done;
    }
    const char *sh = strstr(h, "'shape':");
    unsigned long long n = 0, d = 0;
    char close = 0;
    if (!sh || sscanf(sh, "'shape': (%llu, %llu%c", &n, &d, &close) != 3 || (close != ')' && close != ',')) {
        st = s3v_errorf(S3V_ERR_INVALID, "%s: .npy must be 2-D (rows, dimension)", r->path);
        goto done;
    }
    if (d == 0 || d > IVF_DIM_MAX) {
        st = s3v_errorf(S3V_ERR_INVALID, "%s: dimension %llu outside 1..%d", r->path, d, IVF_DIM_MAX);
        goto done;
    }
    r->dim = (uint32_t)d;
    r->count_hint = n;
    r->data_start = start + (long)hlen;
    struct stat sb;
    if (fstat(fileno(r->f), &sb) == 0 && (uint64_t)sb.st_size != (uint64_t)r->data_start + n * d * 4)
        st = s3v_errorf(S3V_ERR_INVALID, "%s: file size does not match shape (%llu, %llu)", r->path, n, d);
done:
    free(h);
    return st;
}

static s3v_status fvecs_header(vec_reader *r)
{
    uint8_t b[4];
    if (fread(b, 1, 4, r->f) != 4) return s3v_errorf(S3V_ERR_INVALID, "%s: empty input", r->path);
    int32_t d = (int32_t)le_get_u32(b);
    if (d <= 0 || d > IVF_DIM_MAX)
        return s3v_errorf(S3V_ERR_INVALID, "%s: dimension %d outside 1..%d", r->path, d, IVF_DIM_MAX);
    r->dim = (uint32_t)d;
    struct stat sb;
    if (fstat(fileno(r->f), &sb) == 0) {
        uint64_t rec = 4 + 4 * (uint64_t)d;
        if ((uint64_t)sb.st_size % rec)
            return s3v_errorf(S3V_ERR_INVALID,
                              "%s: size %lld is not a whole number of %llu-byte rows (dimension %d)", r->path,
                              (long long)sb.st_size, (unsigned long long)rec, d);
        r->count_hint = (uint64_t)sb.st_size / rec;
    }
    rewind(r->f);
    r->data_start = 0;
    return S3V_OK;
}

/* Reads one line (without the newline) into r->line. *has = 0 at EOF. */
static s3v_status read_line(vec_reader *r, FILE *f, int *has)
{
    size_t len = 0;
    int c;
    while ((c = getc(f)) != EOF && c != '\n') {
        if (len + 2 > r->line_cap) {
            if (r->line_cap >= LINE_MAX_SIZE)
                return s3v_errorf(S3V_ERR_INVALID, "%s: line %llu longer than %u bytes", r->path,
                                  (unsigned long long)r->line_no + 1, LINE_MAX_SIZE);
            size_t cap = r->line_cap ? r->line_cap * 2 : 4096;
            char *p = realloc(r->line, cap);
            if (!p) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
            r->line = p;
            r->line_cap = cap;
        }
        r->line[len++] = (char)c;
    }
    if (ferror(f)) return s3v_errorf(S3V_ERR_IO, "%s: read error", r->path);
    if (c == EOF && len == 0) {
        *has = 0;
        return S3V_OK;
    }
    if (!r->line) {
        r->line = malloc(16);
        if (!r->line) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        r->line_cap = 16;
    }
    if (len && r->line[len - 1] == '\r') len--;
    r->line[len] = 0;
    r->line_no++;
    *has = 1;
    return S3V_OK;
}

/* Parses the next non-blank JSON Lines record into a cJSON tree. */
static s3v_status jsonl_next_tree(vec_reader *r, cJSON **out, int *has)
{
    for (;;) {
        S3V_TRY(read_line(r, r->f, has));
        if (!*has) return S3V_OK;
        const char *p = r->line;
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) continue;
        cJSON *j = cJSON_Parse(p);
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return s3v_errorf(S3V_ERR_INVALID, "%s: line %llu: not a JSON object", r->path,
                              (unsigned long long)r->line_no);
        }
        *out = j;
        return S3V_OK;
    }
}

static const cJSON *jsonl_data(const cJSON *rec)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(rec, "data");
    if (cJSON_IsObject(d)) d = cJSON_GetObjectItemCaseSensitive(d, "float32");
    return cJSON_IsArray(d) ? d : NULL;
}

s3v_status vec_reader_open(const char *path, const char *keys_path, vec_reader **out)
{
    vec_reader *r = calloc(1, sizeof *r);
    if (!r) return s3v_errorf(S3V_ERR_NOMEM, "out of memory");
    s3v_status st = S3V_OK;
    r->path = strdup(path);
    if (!r->path) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    const char *ext = ext_of(path);
    if (strcmp(ext, "fvecs") == 0)
        r->format = VEC_FORMAT_FVECS;
    else if (strcmp(ext, "npy") == 0)
        r->format = VEC_FORMAT_NPY;
    else if (strcmp(ext, "jsonl") == 0 || strcmp(ext, "ndjson") == 0 || strcmp(ext, "json") == 0)
        r->format = VEC_FORMAT_JSONL;
    else {
        st = s3v_errorf(S3V_ERR_INVALID, "%s: unknown input format (use .fvecs, .npy or .jsonl)", path);
        goto fail;
    }
    if (keys_path && r->format == VEC_FORMAT_JSONL) {
        st = s3v_errorf(S3V_ERR_INVALID,
                        "--keys applies to .fvecs and .npy; JSON Lines records carry their keys");
        goto fail;
    }
    S3V_CHECK(open_file(path, &r->f));
    if (keys_path) {
        r->keys_path = strdup(keys_path);
        if (!r->keys_path) {
            st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
            goto fail;
        }
        S3V_CHECK(open_file(keys_path, &r->keys));
    }
    if (r->format == VEC_FORMAT_FVECS)
        S3V_CHECK(fvecs_header(r));
    else if (r->format == VEC_FORMAT_NPY)
        S3V_CHECK(npy_header(r));
    else {
        int has = 0;
        S3V_CHECK(jsonl_next_tree(r, &r->pending, &has));
        if (!has) {
            st = s3v_errorf(S3V_ERR_INVALID, "%s: empty input", path);
            goto fail;
        }
        const cJSON *d = jsonl_data(r->pending);
        int n = d ? cJSON_GetArraySize(d) : 0;
        if (n <= 0 || n > IVF_DIM_MAX) {
            st = s3v_errorf(S3V_ERR_INVALID, "%s: line %llu: \"data\" must be an array of 1..%d numbers",
                            path, (unsigned long long)r->line_no, IVF_DIM_MAX);
            goto fail;
        }
        r->dim = (uint32_t)n;
    }
    if (r->format != VEC_FORMAT_JSONL && r->count_hint == 0) {
        st = s3v_errorf(S3V_ERR_INVALID, "%s: empty input", path);
        goto fail;
    }
    s3v_buf_init(&r->meta_text, (size_t)S3V_METADATA_MAX_SIZE * 8);
    r->vec = malloc((size_t)r->dim * sizeof(float));
    if (!r->vec) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *out = r;
    return S3V_OK;
fail:
    vec_reader_close(r);
    return st;
}

void vec_reader_close(vec_reader *r)
{
    if (!r) return;
    if (r->f) fclose(r->f);
    if (r->keys) fclose(r->keys);
    cJSON_Delete(r->pending);
    s3v_buf_free(&r->meta_text);
    free(r->line);
    free(r->vec);
    free(r->path);
    free(r->keys_path);
    free(r);
}

vec_format vec_reader_format(const vec_reader *r) { return r->format; }

void vec_reader_set_non_filterable(vec_reader *r, const char *const *keys, size_t len)
{
    r->non_filterable = keys;
    r->non_filterable_len = len;
}
uint32_t vec_reader_dim(const vec_reader *r) { return r->dim; }
uint64_t vec_reader_count_hint(const vec_reader *r)
{
    return r->format == VEC_FORMAT_JSONL ? 0 : r->count_hint;
}

static s3v_status check_finite(vec_reader *r)
{
    for (uint32_t j = 0; j < r->dim; j++) {
        if (!isfinite(r->vec[j])) {
            char d[64];
            snprintf(d, sizeof d, "%s at element %u", isnan(r->vec[j]) ? "NaN" : "infinity", j + 1);
            return row_error(r, "", d);
        }
    }
    return S3V_OK;
}

static s3v_status next_key_line(vec_reader *r, vec_record *rec)
{
    size_t len = 0;
    int c;
    while ((c = getc(r->keys)) != EOF && c != '\n') {
        if (len > IVF_KEY_MAX)
            return s3v_errorf(S3V_ERR_INVALID, "%s: line %llu: key longer than %d bytes", r->keys_path,
                              (unsigned long long)r->row + 1, IVF_KEY_MAX);
        r->keybuf[len++] = (char)c;
    }
    if (c == EOF && len == 0)
        return s3v_errorf(S3V_ERR_INVALID, "%s: has %llu keys but the input has more rows", r->keys_path,
                          (unsigned long long)r->row);
    if (len && r->keybuf[len - 1] == '\r') len--;
    if (vec_key_check((const uint8_t *)r->keybuf, len) != S3V_OK)
        return s3v_error_context(S3V_ERR_INVALID, "%s: line %llu", r->keys_path,
                                 (unsigned long long)r->row + 1);
    rec->key = (const uint8_t *)r->keybuf;
    rec->key_len = len;
    return S3V_OK;
}

static s3v_status next_binary(vec_reader *r, vec_record *rec, int *has)
{
    if (r->format == VEC_FORMAT_FVECS) {
        uint8_t b[4];
        size_t got = fread(b, 1, 4, r->f);
        if (got == 0 && feof(r->f)) goto end;
        if (got != 4) return row_error(r, "truncated row", NULL);
        int32_t d = (int32_t)le_get_u32(b);
        if (d != (int32_t)r->dim) {
            char m[64];
            snprintf(m, sizeof m, "dimension %d, expected %u", d, r->dim);
            return row_error(r, "", m);
        }
    } else if (r->row >= r->count_hint) {
        goto end;
    }
    if (fread(r->vec, 4, r->dim, r->f) != r->dim) return row_error(r, "truncated row", NULL);
    if (!le_host_is_le())
        for (uint32_t j = 0; j < r->dim; j++) r->vec[j] = le_get_f32((const uint8_t *)&r->vec[j]);
    S3V_TRY(check_finite(r));
    if (r->keys) {
        S3V_TRY(next_key_line(r, rec));
    } else {
        int n = snprintf(r->keybuf, sizeof r->keybuf, "%llu", (unsigned long long)r->row);
        rec->key = (const uint8_t *)r->keybuf;
        rec->key_len = (size_t)n;
    }
    rec->meta = NULL;
    rec->meta_len = 0;
    rec->data = r->vec;
    rec->row = r->row++;
    *has = 1;
    return S3V_OK;
end:
    if (r->keys) {
        int c;
        while ((c = getc(r->keys)) == '\n' || c == '\r') {
        }
        if (c != EOF)
            return s3v_errorf(S3V_ERR_INVALID, "%s: has more keys than the input has rows (%llu)",
                              r->keys_path, (unsigned long long)r->row);
    }
    if (r->row == 0) return s3v_errorf(S3V_ERR_INVALID, "%s: empty input", r->path);
    *has = 0;
    return S3V_OK;
}

static s3v_status next_jsonl(vec_reader *r, vec_record *rec, int *has)
{
    cJSON *j = r->pending;
    r->pending = NULL;
    if (!j) {
        S3V_TRY(jsonl_next_tree(r, &j, has));
        if (!*has) {
            if (r->row == 0) return s3v_errorf(S3V_ERR_INVALID, "%s: empty input", r->path);
            return S3V_OK;
        }
    }
    s3v_status st = S3V_OK;
    const cJSON *key = cJSON_GetObjectItemCaseSensitive(j, "key");
    const cJSON *data = jsonl_data(j);
    const cJSON *meta = cJSON_GetObjectItemCaseSensitive(j, "metadata");
    if (!cJSON_IsString(key)) {
        st = row_error(r, "\"key\" must be a string", NULL);
        goto done;
    }
    size_t klen = strlen(key->valuestring);
    if (vec_key_check((const uint8_t *)key->valuestring, klen) != S3V_OK) {
        st = s3v_error_context(S3V_ERR_INVALID, "%s: row %llu", r->path, (unsigned long long)r->row + 1);
        goto done;
    }
    if (!data) {
        st = row_error(r, "\"data\" must be an array of numbers (or {\"float32\": [...]})", NULL);
        goto done;
    }
    int n = cJSON_GetArraySize(data);
    if (n != (int)r->dim) {
        char m[64];
        snprintf(m, sizeof m, "dimension %d, expected %u", n, r->dim);
        st = row_error(r, "", m);
        goto done;
    }
    int i = 0;
    for (const cJSON *v = data->child; v; v = v->next, i++) {
        if (!cJSON_IsNumber(v)) {
            char m[64];
            snprintf(m, sizeof m, "element %d of \"data\" is not a number", i + 1);
            st = row_error(r, "", m);
            goto done;
        }
        r->vec[i] = (float)v->valuedouble;
    }
    st = check_finite(r);
    if (st != S3V_OK) goto done;
    s3v_buf_reset(&r->meta_text);
    rec->meta = NULL;
    rec->meta_len = 0;
    if (meta && !cJSON_IsNull(meta)) {
        if (!cJSON_IsObject(meta)) {
            st = row_error(r, "\"metadata\" must be an object", NULL);
            goto done;
        }
        if (metadata_validate(meta, r->non_filterable, r->non_filterable_len) != S3V_OK) {
            st = s3v_error_context(S3V_ERR_INVALID, "%s: row %llu: metadata", r->path,
                                   (unsigned long long)r->row + 1);
            goto done;
        }
        st = metadata_serialize(meta, &r->meta_text);
        if (st != S3V_OK) goto done;
        rec->meta = r->meta_text.ptr;
        rec->meta_len = r->meta_text.len;
    }
    memcpy(r->keybuf, key->valuestring, klen);
    rec->key = (const uint8_t *)r->keybuf;
    rec->key_len = klen;
    rec->data = r->vec;
    rec->row = r->row++;
    *has = 1;
done:
    cJSON_Delete(j);
    return st;
}

s3v_status vec_reader_next(vec_reader *r, vec_record *rec, int *has)
{
    *has = 0;
    return r->format == VEC_FORMAT_JSONL ? next_jsonl(r, rec, has) : next_binary(r, rec, has);
}

s3v_status vec_reader_rewind(vec_reader *r)
{
    if (fseek(r->f, r->data_start, SEEK_SET) != 0)
        return s3v_errorf(S3V_ERR_IO, "%s: cannot rewind", r->path);
    if (r->keys) rewind(r->keys);
    cJSON_Delete(r->pending);
    r->pending = NULL;
    r->row = 0;
    r->line_no = 0;
    return S3V_OK;
}

static s3v_status read_vecs(const char *path, void **out, size_t *rows, size_t *dim)
{
    FILE *f;
    S3V_TRY(open_file(path, &f));
    s3v_status st = S3V_OK;
    uint8_t *buf = NULL;
    struct stat sb;
    uint8_t b[4];
    if (fstat(fileno(f), &sb) != 0 || fread(b, 1, 4, f) != 4) {
        st = s3v_errorf(S3V_ERR_INVALID, "%s: empty or unreadable", path);
        goto done;
    }
    int32_t d = (int32_t)le_get_u32(b);
    uint64_t rec = 4 + 4 * (uint64_t)(d > 0 ? d : 1);
    if (d <= 0 || d > (1 << 20) || (uint64_t)sb.st_size % rec) {
        st = s3v_errorf(S3V_ERR_INVALID, "%s: not a vecs file (dimension %d, size %lld)", path, d,
                        (long long)sb.st_size);
        goto done;
    }
    size_t n = (size_t)((uint64_t)sb.st_size / rec);
    buf = malloc(n * (size_t)d * 4);
    if (!buf) {
        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory reading %s", path);
        goto done;
    }
    rewind(f);
    for (size_t i = 0; i < n; i++) {
        if (fread(b, 1, 4, f) != 4 || (int32_t)le_get_u32(b) != d ||
            fread(buf + i * (size_t)d * 4, 4, (size_t)d, f) != (size_t)d) {
            st = s3v_errorf(S3V_ERR_INVALID, "%s: row %zu is malformed", path, i + 1);
            goto done;
        }
    }
    *out = buf;
    buf = NULL;
    *rows = n;
    *dim = (size_t)d;
done:
    free(buf);
    fclose(f);
    return st;
}

s3v_status vec_read_fvecs(const char *path, float **out, size_t *rows, size_t *dim)
{
    return read_vecs(path, (void **)out, rows, dim);
}

s3v_status vec_read_ivecs(const char *path, int32_t **out, size_t *rows, size_t *dim)
{
    return read_vecs(path, (void **)out, rows, dim);
}
