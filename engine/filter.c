/* engine/filter.c: compiling S3 Vectors metadata filters, matching them on raw metadata JSON text,
 * and validating per-vector metadata.
 *
 * Compiled form: a flat array of nodes (AND, OR, LEAF). A leaf names a key slot (an index into the
 * filter's table of distinct referenced keys), an operator and a range of operand values. Children
 * of AND/OR are a contiguous range of `kids`. Everything lives in four arrays owned by the filter.
 *
 * Matching: scan_metadata() walks the top-level object of the metadata text once, validating every
 * byte (strings, escapes, surrogate pairs, numbers, literals, nesting), and records for each
 * referenced key the span of its value (first occurrence wins). eval() then walks the nodes; a
 * leaf decodes just the value it needs: strings are compared escape-by-escape against the operand
 * bytes, numbers are converted with strtod (C locale; only bootstrap/ and cli/ could change it, and
 * neither does) from a bounded copy of their token.
 *
 * Semantic choices not fixed by the S3 Vectors guide, and why:
 *  - $ne / $nin on a missing key match (they are the negations of $eq / $in, the MongoDB rule the
 *    guide's operator set is borrowed from). A present null or object value is "present" for
 *    $exists and never equal to an operand.
 *  - Range operators on an array value match when any numeric element does (MongoDB; consistent
 *    with the guide's documented any-element rule for $eq).
 *  - An empty filter object {} is rejected rather than read as "match all": S3 Vectors requires
 *    every $and/$or array to be non-empty, and a client that wants no filter omits it.
 *  - A number token longer than 1024 bytes is malformed (it is converted from a bounded copy).
 *    cJSON_PrintUnformatted, which writes the stored metadata, prints at most 17 significant digits,
 *    so only hand-made text can hold one; cJSON itself would accept it.
 *
 * Metadata sizes (metadata_size): S3 Vectors states the limits but not how bytes are counted. We
 * count, per top-level key, the UTF-8 bytes of the key plus the value's bytes: a string its UTF-8
 * bytes, a number 8 (a double), a boolean 1, a list the sum of its elements: the sum-of-UTF-8-bytes
 * rule S3 documents for object metadata, without JSON punctuation or escapes. The service does not
 * publish its rule, so metadata right at a limit may be judged differently there. */
#include "engine/filter.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NUMBER_MAX_TOKEN 1024 /* bytes of one number in metadata text */
#define PATH_CAP         192

enum node_kind { NODE_AND = 0, NODE_OR = 1, NODE_LEAF = 2 };
enum op { OP_EQ, OP_NE, OP_GT, OP_GTE, OP_LT, OP_LTE, OP_IN, OP_NIN, OP_EXISTS };
enum vtype { VT_STR = 0, VT_NUM = 1, VT_BOOL = 2 };

typedef struct fval {
    double num;
    uint32_t str_off; /* into strings */
    uint32_t str_len;
    uint8_t type;    /* enum vtype */
    uint8_t boolean; /* VT_BOOL, and $exists's operand */
} fval;

typedef struct fnode {
    uint8_t kind; /* enum node_kind */
    uint8_t op;   /* enum op, leaves only */
    uint16_t key; /* leaves: key slot */
    uint32_t first;
    uint32_t count; /* AND/OR: kids[first..first+count); leaves: vals[first..first+count) */
} fnode;

typedef struct fkey {
    uint32_t off; /* into strings */
    uint32_t len;
} fkey;

struct s3v_filter {
    fnode *nodes;
    uint32_t nodes_len, nodes_cap;
    uint32_t *kids;
    uint32_t kids_len, kids_cap;
    fval *vals;
    uint32_t vals_len, vals_cap;
    uint8_t *strings;
    size_t strings_len, strings_cap;
    fkey keys[S3V_FILTER_MAX_KEYS];
    uint32_t keys_len;
    uint32_t root;
    uint32_t budget; /* nodes + values, <= S3V_FILTER_MAX_NODES */
};

/* ------------------------------------------------------------------------------------------------
 * Compilation */

typedef struct compiler {
    s3v_filter *f;
    char path[PATH_CAP];
    size_t path_len;
} compiler;

static s3v_status fail_at(compiler *c, const char *fmt, ...) S3V_PRINTF(2, 3);

static s3v_status fail_at(compiler *c, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return s3v_errorf(S3V_ERR_INVALID, "%s: %s", c->path, msg);
}

/* Appends ".key" (long keys shortened for display) or "[i]" to the path; returns the old length
 * for path_pop. A path that would overflow is cut short, never overrun. */
static size_t path_push_key(compiler *c, const char *key)
{
    size_t mark = c->path_len;
    size_t room = sizeof c->path - c->path_len;
    int n = snprintf(c->path + c->path_len, room, strlen(key) > 48 ? ".%.45s..." : ".%s", key);
    if (n > 0) c->path_len += (size_t)n < room ? (size_t)n : room - 1;
    return mark;
}

static size_t path_push_index(compiler *c, int i)
{
    size_t mark = c->path_len;
    size_t room = sizeof c->path - c->path_len;
    int n = snprintf(c->path + c->path_len, room, "[%d]", i);
    if (n > 0) c->path_len += (size_t)n < room ? (size_t)n : room - 1;
    return mark;
}

static void path_pop(compiler *c, size_t mark)
{
    c->path_len = mark;
    c->path[mark] = '\0';
}

/* Grows *arr (of `elem`-byte items, `*cap` allocated) to hold `need` items. */
static s3v_status grow(void **arr, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap) return S3V_OK;
    uint32_t ncap = *cap ? *cap : 8;
    while (ncap < need) ncap *= 2;
    void *p = realloc(*arr, (size_t)ncap * elem);
    if (!p) return s3v_errorf(S3V_ERR_NOMEM, "filter: out of memory");
    *arr = p;
    *cap = ncap;
    return S3V_OK;
}

static s3v_status spend(compiler *c, uint32_t n)
{
    if (c->f->budget + n > S3V_FILTER_MAX_NODES)
        return fail_at(c, "filter has more than %d clauses and values", S3V_FILTER_MAX_NODES);
    c->f->budget += n;
    return S3V_OK;
}

static s3v_status new_node(compiler *c, uint8_t kind, uint32_t *idx)
{
    s3v_filter *f = c->f;
    S3V_TRY(spend(c, 1));
    S3V_TRY(grow((void **)&f->nodes, &f->nodes_cap, f->nodes_len + 1, sizeof *f->nodes));
    fnode *n = &f->nodes[f->nodes_len];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    *idx = f->nodes_len++;
    return S3V_OK;
}

/* Reserves `count` contiguous kid slots; children fill them as they are compiled. */
static s3v_status reserve_kids(compiler *c, uint32_t count, uint32_t *first)
{
    s3v_filter *f = c->f;
    S3V_TRY(grow((void **)&f->kids, &f->kids_cap, f->kids_len + count, sizeof *f->kids));
    *first = f->kids_len;
    f->kids_len += count;
    return S3V_OK;
}

static s3v_status add_string(compiler *c, const char *s, size_t len, uint32_t *off)
{
    s3v_filter *f = c->f;
    if (len > UINT32_MAX - f->strings_len) return fail_at(c, "string too long");
    if (!f->strings || f->strings_len + len > f->strings_cap) { /* never NULL once used: memcmp */
        size_t ncap = f->strings_cap ? f->strings_cap : 64;
        while (ncap < f->strings_len + len) ncap *= 2;
        uint8_t *p = realloc(f->strings, ncap);
        if (!p) return s3v_errorf(S3V_ERR_NOMEM, "filter: out of memory");
        f->strings = p;
        f->strings_cap = ncap;
    }
    if (len) memcpy(f->strings + f->strings_len, s, len);
    *off = (uint32_t)f->strings_len;
    f->strings_len += len;
    return S3V_OK;
}

static int is_scalar(const cJSON *v) { return cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v); }

/* Appends one operand value (a string, number or boolean). */
static s3v_status add_val(compiler *c, const cJSON *v)
{
    s3v_filter *f = c->f;
    S3V_TRY(spend(c, 1));
    S3V_TRY(grow((void **)&f->vals, &f->vals_cap, f->vals_len + 1, sizeof *f->vals));
    fval val;
    memset(&val, 0, sizeof val);
    if (cJSON_IsString(v)) {
        val.type = VT_STR;
        size_t len = strlen(v->valuestring);
        S3V_TRY(add_string(c, v->valuestring, len, &val.str_off));
        val.str_len = (uint32_t)len;
    } else if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble)) return fail_at(c, "number out of range");
        val.type = VT_NUM;
        val.num = v->valuedouble;
    } else {
        val.type = VT_BOOL;
        val.boolean = cJSON_IsTrue(v) ? 1 : 0;
    }
    f->vals[f->vals_len++] = val;
    return S3V_OK;
}

static s3v_status intern_key(compiler *c, const char *key, uint16_t *slot)
{
    s3v_filter *f = c->f;
    size_t len = strlen(key);
    if (len > S3V_FILTER_MAX_KEY_SIZE) return fail_at(c, "key longer than %d bytes", S3V_FILTER_MAX_KEY_SIZE);
    for (uint32_t i = 0; i < f->keys_len; i++) {
        if (f->keys[i].len == len && memcmp(f->strings + f->keys[i].off, key, len) == 0) {
            *slot = (uint16_t)i;
            return S3V_OK;
        }
    }
    if (f->keys_len == S3V_FILTER_MAX_KEYS)
        return fail_at(c, "filter references more than %d distinct keys", S3V_FILTER_MAX_KEYS);
    uint32_t off;
    S3V_TRY(add_string(c, key, len, &off));
    f->keys[f->keys_len].off = off;
    f->keys[f->keys_len].len = (uint32_t)len;
    *slot = (uint16_t)f->keys_len++;
    return S3V_OK;
}

static const struct {
    const char *name;
    enum op op;
} OPS[] = {
    {"$eq", OP_EQ},   {"$ne", OP_NE}, {"$gt", OP_GT},   {"$gte", OP_GTE},       {"$lt", OP_LT},
    {"$lte", OP_LTE}, {"$in", OP_IN}, {"$nin", OP_NIN}, {"$exists", OP_EXISTS},
};

/* One "$op": operand member of a key's operator object. */
static s3v_status compile_op(compiler *c, uint16_t slot, const cJSON *item, uint32_t *idx)
{
    s3v_status st = S3V_OK;
    const char *name = item->string ? item->string : "";
    size_t mark = path_push_key(c, name);
    int op = -1;
    for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
        if (strcmp(name, OPS[i].name) == 0) op = (int)OPS[i].op;
    if (op < 0) {
        if (name[0] == '$') {
            st = fail_at(c, "unknown operator");
        } else {
            st = fail_at(c, "expected an operator ($eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists); "
                            "metadata values are not nested objects");
        }
        goto fail;
    }
    uint32_t n;
    S3V_CHECK(new_node(c, NODE_LEAF, &n));
    c->f->nodes[n].op = (uint8_t)op;
    c->f->nodes[n].key = slot;
    c->f->nodes[n].first = c->f->vals_len;
    switch ((enum op)op) {
    case OP_EQ:
    case OP_NE:
        if (!is_scalar(item)) {
            st = fail_at(c, "expected a string, number or boolean");
            goto fail;
        }
        S3V_CHECK(add_val(c, item));
        break;
    case OP_GT:
    case OP_GTE:
    case OP_LT:
    case OP_LTE:
        if (!cJSON_IsNumber(item)) {
            st = fail_at(c, "expected a number");
            goto fail;
        }
        S3V_CHECK(add_val(c, item));
        break;
    case OP_IN:
    case OP_NIN: {
        if (!cJSON_IsArray(item) || !item->child) {
            st = fail_at(c, "expected a non-empty array of strings, numbers or booleans");
            goto fail;
        }
        int i = 0;
        for (const cJSON *e = item->child; e; e = e->next, i++) {
            size_t m2 = path_push_index(c, i);
            if (!is_scalar(e)) {
                st = fail_at(c, "expected a string, number or boolean");
                goto fail;
            }
            S3V_CHECK(add_val(c, e));
            path_pop(c, m2);
        }
        break;
    }
    case OP_EXISTS:
        if (!cJSON_IsBool(item)) {
            st = fail_at(c, "expected a boolean");
            goto fail;
        }
        S3V_CHECK(add_val(c, item));
        break;
    }
    c->f->nodes[n].count = c->f->vals_len - c->f->nodes[n].first;
    path_pop(c, mark);
    *idx = n;
    return S3V_OK;
fail:
    return st;
}

/* "key": value where key does not start with '$'. */
static s3v_status compile_field(compiler *c, const cJSON *item, uint32_t *idx)
{
    uint16_t slot = 0;
    S3V_TRY(intern_key(c, item->string ? item->string : "", &slot));
    if (is_scalar(item)) {
        uint32_t n;
        S3V_TRY(new_node(c, NODE_LEAF, &n));
        c->f->nodes[n].op = OP_EQ;
        c->f->nodes[n].key = slot;
        c->f->nodes[n].first = c->f->vals_len;
        S3V_TRY(add_val(c, item));
        c->f->nodes[n].count = 1;
        *idx = n;
        return S3V_OK;
    }
    if (!cJSON_IsObject(item))
        return fail_at(c, "expected a string, number, boolean or an object of operators");
    int count = cJSON_GetArraySize(item);
    if (count == 0) return fail_at(c, "expected at least one operator");
    if (count == 1) return compile_op(c, slot, item->child, idx);
    uint32_t n, first;
    S3V_TRY(new_node(c, NODE_AND, &n));
    S3V_TRY(reserve_kids(c, (uint32_t)count, &first));
    c->f->nodes[n].first = first;
    c->f->nodes[n].count = (uint32_t)count;
    uint32_t i = 0;
    for (const cJSON *m = item->child; m; m = m->next, i++) {
        uint32_t kid;
        S3V_TRY(compile_op(c, slot, m, &kid));
        c->f->kids[first + i] = kid;
    }
    *idx = n;
    return S3V_OK;
}

static s3v_status compile_object(compiler *c, const cJSON *obj, int depth, uint32_t *idx);

static s3v_status compile_logical(compiler *c, const cJSON *arr, uint8_t kind, int depth, uint32_t *idx)
{
    if (!cJSON_IsArray(arr) || !arr->child) return fail_at(c, "expected a non-empty array of filter objects");
    int count = cJSON_GetArraySize(arr);
    uint32_t n, first;
    S3V_TRY(new_node(c, kind, &n));
    S3V_TRY(reserve_kids(c, (uint32_t)count, &first));
    c->f->nodes[n].first = first;
    c->f->nodes[n].count = (uint32_t)count;
    int i = 0;
    for (const cJSON *e = arr->child; e; e = e->next, i++) {
        size_t mark = path_push_index(c, i);
        uint32_t kid;
        S3V_TRY(compile_object(c, e, depth + 1, &kid));
        c->f->kids[first + (uint32_t)i] = kid;
        path_pop(c, mark);
    }
    *idx = n;
    return S3V_OK;
}

static s3v_status compile_member(compiler *c, const cJSON *item, int depth, uint32_t *idx)
{
    const char *name = item->string ? item->string : "";
    size_t mark = path_push_key(c, name);
    if (name[0] == '$') {
        if (strcmp(name, "$and") == 0) {
            S3V_TRY(compile_logical(c, item, NODE_AND, depth, idx));
        } else if (strcmp(name, "$or") == 0) {
            S3V_TRY(compile_logical(c, item, NODE_OR, depth, idx));
        } else {
            int known = 0;
            for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++)
                if (strcmp(name, OPS[i].name) == 0) known = 1;
            if (known)
                return fail_at(c, "operator must be applied to a metadata key, e.g. {\"key\": {\"%s\": ...}}",
                               name);
            return fail_at(c, "unknown operator");
        }
    } else {
        S3V_TRY(compile_field(c, item, idx));
    }
    path_pop(c, mark);
    return S3V_OK;
}

static s3v_status compile_object(compiler *c, const cJSON *obj, int depth, uint32_t *idx)
{
    if (!cJSON_IsObject(obj)) return fail_at(c, "expected an object");
    if (depth > S3V_FILTER_MAX_DEPTH)
        return fail_at(c, "filter nested deeper than %d levels", S3V_FILTER_MAX_DEPTH);
    int count = cJSON_GetArraySize(obj);
    if (count == 0) return fail_at(c, "expected a non-empty object");
    if (count == 1) return compile_member(c, obj->child, depth, idx);
    uint32_t n, first;
    S3V_TRY(new_node(c, NODE_AND, &n));
    S3V_TRY(reserve_kids(c, (uint32_t)count, &first));
    c->f->nodes[n].first = first;
    c->f->nodes[n].count = (uint32_t)count;
    uint32_t i = 0;
    for (const cJSON *m = obj->child; m; m = m->next, i++) {
        uint32_t kid;
        S3V_TRY(compile_member(c, m, depth, &kid));
        c->f->kids[first + i] = kid;
    }
    *idx = n;
    return S3V_OK;
}

void filter_free(s3v_filter *f)
{
    if (!f) return;
    free(f->nodes);
    free(f->kids);
    free(f->vals);
    free(f->strings);
    free(f);
}

s3v_status filter_compile(const cJSON *doc, s3v_filter **out)
{
    s3v_status st = S3V_OK;
    compiler *c = calloc(1, sizeof *c);
    s3v_filter *f = calloc(1, sizeof *f);
    if (!c || !f) {
        st = s3v_errorf(S3V_ERR_NOMEM, "filter: out of memory");
        goto fail;
    }
    c->f = f;
    memcpy(c->path, "filter", 7);
    c->path_len = 6;
    if (!doc) {
        st = fail_at(c, "expected an object");
        goto fail;
    }
    S3V_CHECK(compile_object(c, doc, 1, &f->root));
    free(c);
    *out = f;
    return S3V_OK;
fail:
    free(c);
    filter_free(f);
    return st;
}

s3v_status filter_compile_text(const char *json, size_t len, s3v_filter **out)
{
    if (len > S3V_FILTER_MAX_TEXT_SIZE)
        return s3v_errorf(S3V_ERR_INVALID, "filter: text larger than %d bytes", S3V_FILTER_MAX_TEXT_SIZE);
    if (!json || len == 0) return s3v_errorf(S3V_ERR_INVALID, "filter: empty text");
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!doc) return s3v_errorf(S3V_ERR_INVALID, "filter: not valid JSON");
    /* cJSON stops after one value; only whitespace may follow it. */
    for (const char *p = end; p && p < json + len; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(doc);
            return s3v_errorf(S3V_ERR_INVALID, "filter: not valid JSON (text after the value)");
        }
    }
    s3v_status st = filter_compile(doc, out);
    cJSON_Delete(doc);
    return st;
}

int filter_references(const s3v_filter *f, const char *key)
{
    if (!f || !key) return 0;
    size_t len = strlen(key);
    for (uint32_t i = 0; i < f->keys_len; i++)
        if (f->keys[i].len == len && memcmp(f->strings + f->keys[i].off, key, len) == 0) return 1;
    return 0;
}

s3v_status filter_check_filterable(const s3v_filter *f, const char *const *non_filterable,
                                   size_t non_filterable_len)
{
    for (size_t i = 0; i < non_filterable_len; i++) {
        if (non_filterable[i] && filter_references(f, non_filterable[i]))
            return s3v_errorf(S3V_ERR_INVALID,
                              "filter: metadata key '%.64s' is non-filterable and cannot be used in a filter",
                              non_filterable[i]);
    }
    return S3V_OK;
}

/* ------------------------------------------------------------------------------------------------
 * Scanning metadata text. Every function takes [p, end) and returns the position after what it
 * consumed, or NULL when the text is malformed. None reads at or past end. */

static const uint8_t *skip_ws(const uint8_t *p, const uint8_t *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int hex4(const uint8_t *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t ch = p[i];
        int d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            d = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            d = ch - 'A' + 10;
        else
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* *pp points at a backslash inside a string. Decodes one escape (a \uXXXX high surrogate together
 * with its \uXXXX low half) into u as UTF-8; returns the byte count (1..4) and advances *pp, or -1. */
static int unescape(const uint8_t **pp, const uint8_t *end, uint8_t u[4])
{
    const uint8_t *p = *pp;
    if (end - p < 2) return -1;
    uint8_t e = p[1];
    uint8_t single = 0;
    switch (e) {
    case '"': single = '"'; break;
    case '\\': single = '\\'; break;
    case '/': single = '/'; break;
    case 'b': single = '\b'; break;
    case 'f': single = '\f'; break;
    case 'n': single = '\n'; break;
    case 'r': single = '\r'; break;
    case 't': single = '\t'; break;
    case 'u': break;
    default: return -1;
    }
    if (e != 'u') {
        u[0] = single;
        *pp = p + 2;
        return 1;
    }
    if (end - p < 6) return -1;
    long cp = hex4(p + 2);
    if (cp < 0) return -1;
    p += 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        if (end - p < 6 || p[0] != '\\' || p[1] != 'u') return -1;
        long lo = hex4(p + 2);
        if (lo < 0xDC00 || lo > 0xDFFF) return -1;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        p += 6;
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return -1;
    }
    *pp = p;
    if (cp < 0x80) {
        u[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        u[0] = (uint8_t)(0xC0 | (cp >> 6));
        u[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        u[0] = (uint8_t)(0xE0 | (cp >> 12));
        u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        u[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    u[0] = (uint8_t)(0xF0 | (cp >> 18));
    u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    u[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Bytes that end the fast path of a string: the quote, the backslash and control characters. */
static const uint8_t STR_SPECIAL[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 0x80..0xFF: 0 */
};

static uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Flags (bit 7 of a byte) the bytes of w that are a quote, a backslash or below 0x20, using the
 * has-zero / has-less bit tricks. Borrows can flag extra bytes, but only above a truly special
 * byte, so "is any flagged" and "which is the lowest flagged" are both exact. */
static uint64_t special_bytes(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    uint64_t below = (w - ones * 0x20) & ~w;
    uint64_t quote = (q - ones) & ~q;
    uint64_t bslash = (b - ones) & ~b;
    return (below | quote | bslash) & highs;
}

/* The first byte in [p, end) that is special in a string (quote, backslash, control), or end. */
static const uint8_t *find_special(const uint8_t *p, const uint8_t *end)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    /* 8 bytes at a time; in memory order the lowest flagged byte comes first. */
    while (end - p >= 8) {
        uint64_t m = special_bytes(load64(p));
        if (m) return p + (__builtin_ctzll(m) >> 3);
        p += 8;
    }
#endif
    while (p < end && !STR_SPECIAL[*p]) p++;
    return p;
}

/* p is just after an opening quote. Validates the string; when out is not NULL, decodes its first
 * `cap` bytes there. *size receives the full decoded size (which may exceed cap). */
static const uint8_t *scan_string(const uint8_t *p, const uint8_t *end, uint8_t *out, size_t cap,
                                  size_t *size)
{
    /* Fast path: a run of plain bytes up to the closing quote (most keys and values). */
    const uint8_t *start = p;
    p = find_special(p, end);
    if (p < end && *p == '"') {
        size_t n = (size_t)(p - start);
        if (out) memcpy(out, start, n < cap ? n : cap);
        *size = n;
        return p + 1;
    }
    size_t n = (size_t)(p - start);
    if (out) memcpy(out, start, n < cap ? n : cap);
    while (p < end) {
        uint8_t ch = *p;
        if (ch == '"') {
            *size = n;
            return p + 1;
        }
        if (ch < 0x20) return NULL;
        if (ch != '\\') {
            if (out && n < cap) out[n] = ch;
            n++;
            p++;
            continue;
        }
        uint8_t u[4];
        int k = unescape(&p, end, u);
        if (k < 0) return NULL;
        for (int j = 0; j < k; j++, n++)
            if (out && n < cap) out[n] = u[j];
    }
    return NULL;
}

static int is_digit(uint8_t ch) { return ch >= '0' && ch <= '9'; }

static const uint8_t *scan_number(const uint8_t *p, const uint8_t *end)
{
    const uint8_t *s = p;
    if (p < end && *p == '-') p++;
    if (p >= end) return NULL;
    if (*p == '0') {
        p++;
    } else if (*p >= '1' && *p <= '9') {
        while (p < end && is_digit(*p)) p++;
    } else {
        return NULL;
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        if (p >= end || !is_digit(*p)) return NULL;
        while (p < end && is_digit(*p)) p++;
    }
    if (p - s > NUMBER_MAX_TOKEN) return NULL;
    return p;
}

static const uint8_t *scan_literal(const uint8_t *p, const uint8_t *end, const char *lit, size_t len)
{
    if ((size_t)(end - p) < len || memcmp(p, lit, len) != 0) return NULL;
    return p + len;
}

/* Any JSON value; depth is the nesting of the container holding it (the top-level object is 1). */
static const uint8_t *scan_value(const uint8_t *p, const uint8_t *end, int depth)
{
    size_t dummy;
    if (p >= end) return NULL;
    switch (*p) {
    case '"': return scan_string(p + 1, end, NULL, 0, &dummy);
    case 't': return scan_literal(p, end, "true", 4);
    case 'f': return scan_literal(p, end, "false", 5);
    case 'n': return scan_literal(p, end, "null", 4);
    case '[':
        if (depth >= S3V_FILTER_MAX_METADATA_DEPTH) return NULL;
        p = skip_ws(p + 1, end);
        if (p < end && *p == ']') return p + 1;
        for (;;) {
            p = scan_value(p, end, depth + 1);
            if (!p) return NULL;
            p = skip_ws(p, end);
            if (p >= end) return NULL;
            if (*p == ']') return p + 1;
            if (*p != ',') return NULL;
            p = skip_ws(p + 1, end);
        }
    case '{':
        if (depth >= S3V_FILTER_MAX_METADATA_DEPTH) return NULL;
        p = skip_ws(p + 1, end);
        if (p < end && *p == '}') return p + 1;
        for (;;) {
            if (p >= end || *p != '"') return NULL;
            p = scan_string(p + 1, end, NULL, 0, &dummy);
            if (!p) return NULL;
            p = skip_ws(p, end);
            if (p >= end || *p != ':') return NULL;
            p = scan_value(skip_ws(p + 1, end), end, depth + 1);
            if (!p) return NULL;
            p = skip_ws(p, end);
            if (p >= end) return NULL;
            if (*p == '}') return p + 1;
            if (*p != ',') return NULL;
            p = skip_ws(p + 1, end);
        }
    default:
        if (*p == '-' || is_digit(*p)) return scan_number(p, end);
        return NULL;
    }
}

typedef struct span {
    const uint8_t *p; /* NULL: key missing */
    const uint8_t *end;
} span;

static int find_key(const s3v_filter *f, const uint8_t *k, size_t len)
{
    for (uint32_t i = 0; i < f->keys_len; i++)
        if (f->keys[i].len == len && memcmp(f->strings + f->keys[i].off, k, len) == 0) return (int)i;
    return -1;
}

/* Validates the whole text as one JSON object and fills slots[] with the referenced keys' values.
 * Returns 0 when the text is malformed. */
static int scan_metadata(const s3v_filter *f, const uint8_t *p, const uint8_t *end, span *slots)
{
    uint8_t kbuf[S3V_FILTER_MAX_KEY_SIZE];
    p = skip_ws(p, end);
    if (p >= end || *p != '{') return 0;
    p = skip_ws(p + 1, end);
    if (p < end && *p == '}') {
        p++;
    } else {
        for (;;) {
            if (p >= end || *p != '"') return 0;
            /* Every escape decodes to fewer bytes than it is spelt with, so a key whose decoded
             * size equals its raw size has none and is compared in place; else it is decoded into
             * kbuf (a key longer than kbuf is longer than any filter key). */
            const uint8_t *key = p + 1;
            size_t klen;
            p = scan_string(key, end, NULL, 0, &klen);
            if (!p) return 0;
            if (klen != (size_t)(p - 1 - key)) {
                if (klen <= sizeof kbuf) scan_string(key, end, kbuf, sizeof kbuf, &klen);
                key = kbuf;
            }
            p = skip_ws(p, end);
            if (p >= end || *p != ':') return 0;
            const uint8_t *v = skip_ws(p + 1, end);
            p = scan_value(v, end, 1);
            if (!p) return 0;
            if (klen <= sizeof kbuf) {
                int slot = find_key(f, key, klen);
                if (slot >= 0 && !slots[slot].p) {
                    slots[slot].p = v;
                    slots[slot].end = p;
                }
            }
            p = skip_ws(p, end);
            if (p >= end) return 0;
            if (*p == '}') {
                p++;
                break;
            }
            if (*p != ',') return 0;
            p = skip_ws(p + 1, end);
        }
    }
    return skip_ws(p, end) == end;
}

/* ------------------------------------------------------------------------------------------------
 * Evaluation. Spans handed to these were validated by scan_metadata. */

/* p just after the opening quote of a validated string: 1 when it decodes to exactly s[0..len). */
static int string_equals(const uint8_t *p, const uint8_t *end, const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (p < end) {
        uint8_t ch = *p;
        if (ch == '"') return i == len;
        if (ch != '\\') {
            if (i >= len || s[i] != ch) return 0;
            i++;
            p++;
            continue;
        }
        uint8_t u[4];
        int k = unescape(&p, end, u);
        if (k < 0 || i + (size_t)k > len || memcmp(s + i, u, (size_t)k) != 0) return 0;
        i += (size_t)k;
    }
    return 0;
}

static double number_value(const uint8_t *p, const uint8_t *end)
{
    char buf[NUMBER_MAX_TOKEN + 1];
    size_t n = (size_t)(end - p);
    if (n > NUMBER_MAX_TOKEN) n = NUMBER_MAX_TOKEN; /* cannot happen: scan_number bounds tokens */
    memcpy(buf, p, n);
    buf[n] = '\0';
    return strtod(buf, NULL);
}

/* One scalar metadata value [p, end) against a leaf's operands. */
static int scalar_test(const s3v_filter *f, const fnode *n, const uint8_t *p, const uint8_t *end)
{
    const fval *vals = f->vals + n->first;
    uint8_t ch = *p;
    if (ch == '"') {
        if (n->op != OP_EQ && n->op != OP_NE && n->op != OP_IN && n->op != OP_NIN) return 0;
        for (uint32_t i = 0; i < n->count; i++)
            if (vals[i].type == VT_STR &&
                string_equals(p + 1, end, f->strings + vals[i].str_off, vals[i].str_len))
                return 1;
        return 0;
    }
    if (ch == 't' || ch == 'f') {
        if (n->op != OP_EQ && n->op != OP_NE && n->op != OP_IN && n->op != OP_NIN) return 0;
        uint8_t b = ch == 't';
        for (uint32_t i = 0; i < n->count; i++)
            if (vals[i].type == VT_BOOL && vals[i].boolean == b) return 1;
        return 0;
    }
    if (ch != '-' && !is_digit(ch)) return 0; /* null, array, object */
    double x = number_value(p, end);
    switch ((enum op)n->op) {
    case OP_GT: return x > vals[0].num;
    case OP_GTE: return x >= vals[0].num;
    case OP_LT: return x < vals[0].num;
    case OP_LTE: return x <= vals[0].num;
    default:
        for (uint32_t i = 0; i < n->count; i++)
            if (vals[i].type == VT_NUM && vals[i].num == x) return 1;
        return 0;
    }
}

/* The value itself, or any element when it is an array. */
static int value_test(const s3v_filter *f, const fnode *n, const span *s)
{
    if (*s->p != '[') return scalar_test(f, n, s->p, s->end);
    const uint8_t *p = skip_ws(s->p + 1, s->end);
    while (p < s->end && *p != ']') {
        const uint8_t *e = scan_value(p, s->end, 2);
        if (!e) return 0;
        if (scalar_test(f, n, p, e)) return 1;
        p = skip_ws(e, s->end);
        if (p < s->end && *p == ',') p = skip_ws(p + 1, s->end);
    }
    return 0;
}

static int eval_leaf(const s3v_filter *f, const fnode *n, const span *s)
{
    if (!s->p) {
        switch ((enum op)n->op) {
        case OP_EXISTS: return !f->vals[n->first].boolean;
        case OP_NE:
        case OP_NIN: return 1;
        default: return 0;
        }
    }
    switch ((enum op)n->op) {
    case OP_EXISTS: return f->vals[n->first].boolean;
    case OP_NE:
    case OP_NIN: return !value_test(f, n, s);
    default: return value_test(f, n, s);
    }
}

static int eval(const s3v_filter *f, uint32_t idx, const span *slots)
{
    const fnode *n = &f->nodes[idx];
    switch (n->kind) {
    case NODE_AND:
        for (uint32_t i = 0; i < n->count; i++)
            if (!eval(f, f->kids[n->first + i], slots)) return 0;
        return 1;
    case NODE_OR:
        for (uint32_t i = 0; i < n->count; i++)
            if (eval(f, f->kids[n->first + i], slots)) return 1;
        return 0;
    default: return eval_leaf(f, n, &slots[n->key]);
    }
}

int filter_match(const s3v_filter *f, const uint8_t *metadata_json, size_t len)
{
    span slots[S3V_FILTER_MAX_KEYS];
    for (uint32_t i = 0; i < f->keys_len; i++) slots[i].p = slots[i].end = NULL;
    if (len > 0 && !scan_metadata(f, metadata_json, metadata_json + len, slots)) return 0;
    return eval(f, f->root, slots);
}

/* ------------------------------------------------------------------------------------------------
 * Metadata validation */

static const char *key_of(const cJSON *m) { return m->string ? m->string : ""; }

static int listed(const char *key, const char *const *keys, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (keys[i] && strcmp(keys[i], key) == 0) return 1;
    return 0;
}

static size_t scalar_size(const cJSON *v)
{
    if (cJSON_IsString(v)) return strlen(v->valuestring);
    if (cJSON_IsNumber(v)) return 8;
    if (cJSON_IsBool(v)) return 1;
    return 0;
}

void metadata_size(const cJSON *metadata, const char *const *non_filterable, size_t non_filterable_len,
                   size_t *total_size, size_t *filterable_size)
{
    size_t total = 0, filterable = 0;
    if (cJSON_IsObject(metadata)) {
        for (const cJSON *m = metadata->child; m; m = m->next) {
            size_t sz = strlen(key_of(m));
            if (cJSON_IsArray(m)) {
                for (const cJSON *e = m->child; e; e = e->next) sz += scalar_size(e);
            } else {
                sz += scalar_size(m);
            }
            total += sz;
            if (!listed(key_of(m), non_filterable, non_filterable_len)) filterable += sz;
        }
    }
    *total_size = total;
    *filterable_size = filterable;
}

static s3v_status check_scalar(const cJSON *v, const char *key, int index)
{
    char where[96];
    if (index < 0)
        snprintf(where, sizeof where, "%.64s", key);
    else
        snprintf(where, sizeof where, "%.64s[%d]", key, index);
    if (cJSON_IsString(v) || cJSON_IsBool(v)) return S3V_OK;
    if (cJSON_IsNumber(v)) {
        if (!isfinite(v->valuedouble))
            return s3v_errorf(S3V_ERR_INVALID, "metadata.%s: number out of range", where);
        return S3V_OK;
    }
    if (index < 0)
        return s3v_errorf(S3V_ERR_INVALID, "metadata.%s: expected a string, number, boolean or list", where);
    return s3v_errorf(S3V_ERR_INVALID, "metadata.%s: expected a string, number or boolean", where);
}

s3v_status metadata_validate(const cJSON *metadata, const char *const *non_filterable,
                             size_t non_filterable_len)
{
    if (!metadata) return S3V_OK;
    if (!cJSON_IsObject(metadata)) return s3v_errorf(S3V_ERR_INVALID, "metadata: expected an object");
    int count = cJSON_GetArraySize(metadata);
    if (count > S3V_METADATA_MAX_KEYS)
        return s3v_errorf(S3V_ERR_INVALID, "metadata: has %d keys, at most %d allowed", count,
                          S3V_METADATA_MAX_KEYS);
    for (const cJSON *m = metadata->child; m; m = m->next) {
        for (const cJSON *o = metadata->child; o != m; o = o->next)
            if (strcmp(key_of(o), key_of(m)) == 0)
                return s3v_errorf(S3V_ERR_INVALID, "metadata.%.64s: duplicate key", key_of(m));
        if (cJSON_IsArray(m)) {
            int i = 0;
            for (const cJSON *e = m->child; e; e = e->next, i++) S3V_TRY(check_scalar(e, key_of(m), i));
        } else {
            S3V_TRY(check_scalar(m, key_of(m), -1));
        }
    }
    size_t total, filterable;
    metadata_size(metadata, non_filterable, non_filterable_len, &total, &filterable);
    if (total > S3V_METADATA_MAX_SIZE)
        return s3v_errorf(S3V_ERR_INVALID, "metadata: total metadata must have at most %d bytes (has %zu)",
                          S3V_METADATA_MAX_SIZE, total);
    if (filterable > S3V_FILTERABLE_METADATA_MAX_SIZE)
        return s3v_errorf(S3V_ERR_INVALID,
                          "metadata: filterable metadata must have at most %d bytes (has %zu)",
                          S3V_FILTERABLE_METADATA_MAX_SIZE, filterable);
    return S3V_OK;
}

/* ---- metadata_serialize ---- */

static s3v_status ser_string(const char *str, s3v_buf *out)
{
    static const char hex[] = "0123456789abcdef";
    S3V_TRY(s3v_buf_append(out, "\"", 1));
    const unsigned char *p = (const unsigned char *)str;
    const unsigned char *run = p;
    for (; *p; p++) {
        unsigned char c = *p;
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        S3V_TRY(s3v_buf_append(out, run, (size_t)(p - run)));
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t n = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            n = 6;
        }
        S3V_TRY(s3v_buf_append(out, esc, n));
        run = p + 1;
    }
    S3V_TRY(s3v_buf_append(out, run, (size_t)(p - run)));
    return s3v_buf_append(out, "\"", 1);
}

static s3v_status ser_number(double v, s3v_buf *out)
{
    char tmp[40];
    if (!isfinite(v)) return s3v_errorf(S3V_ERR_INVALID, "metadata number is not finite");
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) break;
    }
    return s3v_buf_append_str(out, tmp);
}

static s3v_status ser_value(const cJSON *v, s3v_buf *out, int depth)
{
    if (depth > 64) return s3v_errorf(S3V_ERR_INVALID, "metadata nested too deeply");
    if (cJSON_IsString(v)) return ser_string(v->valuestring, out);
    if (cJSON_IsNumber(v)) return ser_number(v->valuedouble, out);
    if (cJSON_IsTrue(v)) return s3v_buf_append_str(out, "true");
    if (cJSON_IsFalse(v)) return s3v_buf_append_str(out, "false");
    if (cJSON_IsNull(v)) return s3v_buf_append_str(out, "null");
    int obj = cJSON_IsObject(v);
    if (!obj && !cJSON_IsArray(v)) return s3v_errorf(S3V_ERR_INVALID, "metadata value of an unknown type");
    S3V_TRY(s3v_buf_append(out, obj ? "{" : "[", 1));
    for (const cJSON *c = v->child; c; c = c->next) {
        if (c != v->child) S3V_TRY(s3v_buf_append(out, ",", 1));
        if (obj) {
            S3V_TRY(ser_string(c->string ? c->string : "", out));
            S3V_TRY(s3v_buf_append(out, ":", 1));
        }
        S3V_TRY(ser_value(c, out, depth + 1));
    }
    return s3v_buf_append(out, obj ? "}" : "]", 1);
}

s3v_status metadata_serialize(const cJSON *metadata, s3v_buf *out) { return ser_value(metadata, out, 0); }
