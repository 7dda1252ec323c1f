/* tests/unit/test_filter.c: the S3 Vectors filter language and metadata validation (engine/filter.h).
 *
 * Data-driven cases come from tests/vectors/filter/ (*.json) (found through S3VEC_SOURCE_DIR): tables of
 * (filter, metadata that must match, metadata that must not), compile errors with their exact
 * messages, and metadata_validate cases. Every table entry is also evaluated by ref_match(), an
 * independent evaluator written here over cJSON trees, and both must agree with the table. Valid
 * metadata is additionally re-spelled (random \u escapes and whitespace) and truncated at every
 * length, each copy in an exactly-sized allocation so ASan sees any read past it. Then a few
 * thousand random filters and metadata (fixed seed) are cross-checked against ref_match(), and
 * the bounds (depth, nodes, keys, sizes) are tested at and just past each limit. */
#include "engine/filter.h"

#include <dirent.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "testutil.h"

/* ------------------------------------------------------------------------------------------------
 * Reference evaluator: the documented semantics, written directly over cJSON trees. */

static int ref_scalar_eq(const cJSON *m, const cJSON *v)
{
    if (cJSON_IsString(m) && cJSON_IsString(v)) return strcmp(m->valuestring, v->valuestring) == 0;
    if (cJSON_IsNumber(m) && cJSON_IsNumber(v)) return m->valuedouble == v->valuedouble;
    if (cJSON_IsBool(m) && cJSON_IsBool(v)) return cJSON_IsTrue(m) == cJSON_IsTrue(v);
    return 0;
}

/* The predicate of one operator on one scalar (or non-scalar, which never satisfies it). */
static int ref_pred(const cJSON *m, const char *op, const cJSON *operand)
{
    if (strcmp(op, "$eq") == 0) return ref_scalar_eq(m, operand);
    if (strcmp(op, "$in") == 0) {
        const cJSON *v;
        cJSON_ArrayForEach(v, operand) if (ref_scalar_eq(m, v)) return 1;
        return 0;
    }
    if (!cJSON_IsNumber(m)) return 0;
    double x = m->valuedouble, y = operand->valuedouble;
    if (strcmp(op, "$gt") == 0) return x > y;
    if (strcmp(op, "$gte") == 0) return x >= y;
    if (strcmp(op, "$lt") == 0) return x < y;
    if (strcmp(op, "$lte") == 0) return x <= y;
    return 0;
}

static int ref_op(const cJSON *meta, const char *key, const char *op, const cJSON *operand)
{
    const cJSON *m = meta ? cJSON_GetObjectItemCaseSensitive(meta, key) : NULL;
    if (strcmp(op, "$exists") == 0) return (m != NULL) == (cJSON_IsTrue(operand) != 0);
    if (strcmp(op, "$ne") == 0) return !ref_op(meta, key, "$eq", operand);
    if (strcmp(op, "$nin") == 0) return !ref_op(meta, key, "$in", operand);
    if (!m) return 0;
    if (cJSON_IsArray(m)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, m) if (ref_pred(e, op, operand)) return 1;
        return 0;
    }
    return ref_pred(m, op, operand);
}

static int ref_eval(const cJSON *flt, const cJSON *meta)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, flt)
    {
        if (strcmp(c->string, "$and") == 0) {
            const cJSON *e;
            cJSON_ArrayForEach(e, c) if (!ref_eval(e, meta)) return 0;
        } else if (strcmp(c->string, "$or") == 0) {
            int any = 0;
            const cJSON *e;
            cJSON_ArrayForEach(e, c) if (ref_eval(e, meta)) any = 1;
            if (!any) return 0;
        } else if (cJSON_IsObject(c)) {
            const cJSON *o;
            cJSON_ArrayForEach(o, c) if (!ref_op(meta, c->string, o->string, o)) return 0;
        } else if (!ref_op(meta, c->string, "$eq", c)) {
            return 0;
        }
    }
    return 1;
}

/* The reference's view of metadata text: cJSON must parse one object (whitespace around it). */
static int ref_match(const cJSON *flt, const uint8_t *text, size_t len)
{
    if (len == 0) return ref_eval(flt, NULL);
    char *buf = malloc(len + 1);
    memcpy(buf, text, len);
    buf[len] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    int r = 0;
    if (root && cJSON_IsObject(root)) {
        int trailing = 0;
        for (const char *p = end; p < buf + len; p++)
            if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') trailing = 1;
        if (!trailing) r = ref_eval(flt, root);
    }
    cJSON_Delete(root);
    free(buf);
    return r;
}

/* ------------------------------------------------------------------------------------------------
 * Helpers */

/* filter_match on an exactly-sized heap copy, so ASan reports any read outside (ptr, len). */
static int match_exact(const s3v_filter *f, const void *text, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    if (len) memcpy(copy, text, len);
    int r = filter_match(f, len ? copy : NULL, len);
    free(copy);
    return r;
}

static int match_str(const s3v_filter *f, const char *text) { return match_exact(f, text, strlen(text)); }

static s3v_filter *compile_str(const char *text)
{
    s3v_filter *f = NULL;
    if (filter_compile_text(text, strlen(text), &f) != S3V_OK) {
        fprintf(stderr, "compile failed: %s: %s\n", text, s3v_errmsg(S3V_ERR_INVALID));
        return NULL;
    }
    return f;
}

static void put_char(char **p, char ch) { *(*p)++ = ch; }

static void put_u16(char **p, unsigned v)
{
    static const char hex[] = "0123456789abcdef";
    put_char(p, '\\');
    put_char(p, 'u');
    for (int s = 12; s >= 0; s -= 4) put_char(p, hex[(v >> s) & 15]);
}

/* Re-spells valid minified JSON without changing its meaning: inside strings (keys too) some
 * characters become \uXXXX escapes (surrogate pairs above U+FFFF); outside, whitespace is added
 * after structural characters. Returns a malloc'd buffer and its size. */
static char *respell(const char *text, size_t len, s3v_rng *rng, size_t *out_len)
{
    char *out = malloc(len * 12 + 16);
    char *p = out;
    static const char ws[] = " \t\n\r";
    int in_str = 0;
    size_t i = 0;
    while (i < len) {
        unsigned char ch = (unsigned char)text[i];
        if (!in_str) {
            put_char(&p, (char)ch);
            i++;
            if (ch == '"')
                in_str = 1;
            else if ((ch == ',' || ch == ':' || ch == '{' || ch == '[') && s3v_rng_below(rng, 3) == 0)
                put_char(&p, ws[s3v_rng_below(rng, 4)]);
            continue;
        }
        if (ch == '"') {
            put_char(&p, '"');
            i++;
            in_str = 0;
            continue;
        }
        if (ch == '\\') {
            size_t n = text[i + 1] == 'u' ? 6 : 2;
            memcpy(p, text + i, n);
            p += n;
            i += n;
            continue;
        }
        size_t n = ch < 0x80 ? 1 : ch < 0xE0 ? 2 : ch < 0xF0 ? 3 : 4;
        if (s3v_rng_below(rng, 3) != 0) {
            memcpy(p, text + i, n);
            p += n;
            i += n;
            continue;
        }
        unsigned cp = n == 1 ? ch : n == 2 ? ch & 0x1F : n == 3 ? ch & 0x0F : ch & 0x07;
        for (size_t k = 1; k < n; k++) cp = (cp << 6) | ((unsigned char)text[i + k] & 0x3F);
        if (cp >= 0x10000) {
            put_u16(&p, 0xD800 + ((cp - 0x10000) >> 10));
            put_u16(&p, 0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            put_u16(&p, cp);
        }
        i += n;
    }
    *out_len = (size_t)(p - out);
    return out;
}

/* Trees equal with numbers compared exactly (cJSON_Compare allows a relative epsilon). */
static int strict_equal(const cJSON *a, const cJSON *b)
{
    if (!a || !b) return a == b;
    if ((a->type & 0xFF) != (b->type & 0xFF)) return 0;
    if ((a->string == NULL) != (b->string == NULL) || (a->string && strcmp(a->string, b->string) != 0))
        return 0;
    if (cJSON_IsNumber(a)) return a->valuedouble == b->valuedouble;
    if (cJSON_IsString(a)) return strcmp(a->valuestring, b->valuestring) == 0;
    const cJSON *x = a->child, *y = b->child;
    for (; x && y; x = x->next, y = y->next)
        if (!strict_equal(x, y)) return 0;
    return x == NULL && y == NULL;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    char *buf = malloc(1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* ------------------------------------------------------------------------------------------------
 * Data-driven cases */

static s3v_rng vec_rng;

static void run_entry(const char *file, const char *table, const cJSON *flt, s3v_filter *f, s3v_filter *ft,
                      const cJSON *entry, int expected, int crosscheck)
{
    char *text = NULL;
    size_t len = 0;
    int is_object = cJSON_IsObject(entry);
    if (is_object) {
        text = cJSON_PrintUnformatted(entry);
        len = strlen(text);
    } else if (cJSON_IsString(entry)) {
        text = strdup(entry->valuestring);
        len = strlen(text);
    }
    const char *shown = text ? text : "(no metadata)";
    int got = match_exact(f, text, len);
    CHECK(got == expected, "%s: %s: metadata %.200s: got %d, want %d", file, table, shown, got, expected);
    int got_text = match_exact(ft, text, len);
    CHECK(got_text == expected, "%s: %s: (compiled from text) metadata %.200s: got %d", file, table, shown,
          got_text);
    if (crosscheck) {
        int ref = ref_match(flt, (const uint8_t *)text, len);
        CHECK(ref == expected, "%s: %s: reference evaluator disagrees on %.200s: ref %d, table %d", file,
              table, shown, ref, expected);
    }
    if (is_object) {
        for (int k = 0; k < 3; k++) {
            size_t rlen;
            char *re = respell(text, len, &vec_rng, &rlen);
            int r = match_exact(f, re, rlen);
            CHECK(r == expected, "%s: %s: re-spelled %.*s: got %d", file, table, (int)rlen, re, r);
            free(re);
        }
        int prefix_matches = 0;
        for (size_t k = 1; k < len; k++) prefix_matches += match_exact(f, text, k);
        CHECK(prefix_matches == 0, "%s: %s: %d truncations of %.200s matched", file, table, prefix_matches,
              text);
    }
    free(text);
}

static void run_tables(const char *file, const cJSON *tables)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, tables)
    {
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(t, "name"));
        const cJSON *flt = cJSON_GetObjectItemCaseSensitive(t, "filter");
        const cJSON *cc = cJSON_GetObjectItemCaseSensitive(t, "crosscheck");
        int crosscheck = !cJSON_IsFalse(cc);
        s3v_filter *f = NULL, *ft = NULL;
        s3v_status st = filter_compile(flt, &f);
        CHECK(st == S3V_OK, "%s: %s: compile: %s", file, name, s3v_errmsg(st));
        if (st != S3V_OK) continue;
        /* The same filter through filter_compile_text, when cJSON prints it without loss (it prints
         * some doubles with 15 significant digits, e.g. 9007199254740992 as 9.00719925474099e+15). */
        char *ftext = cJSON_PrintUnformatted(flt);
        cJSON *back = cJSON_Parse(ftext);
        if (strict_equal(flt, back)) {
            st = filter_compile_text(ftext, strlen(ftext), &ft);
            CHECK(st == S3V_OK, "%s: %s: compile text: %s", file, name, s3v_errmsg(st));
        }
        cJSON_Delete(back);
        free(ftext);
        if (!ft) ft = f;
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(t, "match"))
            run_entry(file, name, flt, f, ft, e, 1, crosscheck);
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(t, "nomatch"))
            run_entry(file, name, flt, f, ft, e, 0, crosscheck);
        if (ft != f) filter_free(ft);
        filter_free(f);
    }
}

static void run_errors(const char *file, const cJSON *errors)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, errors)
    {
        const char *want = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "error"));
        const cJSON *flt = cJSON_GetObjectItemCaseSensitive(e, "filter");
        const cJSON *txt = cJSON_GetObjectItemCaseSensitive(e, "filter_text");
        s3v_filter *sentinel = (s3v_filter *)&sentinel, *f = sentinel;
        s3v_error_clear();
        s3v_status st = flt ? filter_compile(flt, &f)
                            : filter_compile_text(txt->valuestring, strlen(txt->valuestring), &f);
        const char *msg = s3v_errmsg(st);
        CHECK(st == S3V_ERR_INVALID, "%s: expected S3V_ERR_INVALID for '%s', got %s", file, want,
              s3v_status_name(st));
        CHECK(strcmp(msg, want) == 0, "%s: message\n  got  %s\n  want %s", file, msg, want);
        CHECK(f == sentinel, "%s: out written on failure ('%s')", file, want);
        if (st == S3V_OK) filter_free(f);
    }
}

static void run_validate(const char *file, const cJSON *cases)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, cases)
    {
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(e, "metadata");
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(e, "error");
        char *shown = cJSON_PrintUnformatted(meta);
        s3v_error_clear();
        s3v_status st = metadata_validate(meta, NULL, 0);
        if (cJSON_IsNull(want)) {
            CHECK(st == S3V_OK, "%s: %s: %s", file, shown, s3v_errmsg(st));
        } else {
            CHECK(st == S3V_ERR_INVALID, "%s: %s: got %s", file, shown, s3v_status_name(st));
            CHECK(strcmp(s3v_errmsg(st), want->valuestring) == 0, "%s: %s: message\n  got  %s\n  want %s",
                  file, shown, s3v_errmsg(st), want->valuestring);
        }
        free(shown);
    }
}

static void test_vector_files(void)
{
    const char *src = getenv("S3VEC_SOURCE_DIR");
    REQUIRE(src != NULL, "S3VEC_SOURCE_DIR is not set");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/tests/vectors/filter", src);
    DIR *d = opendir(dir);
    REQUIRE(d != NULL, "cannot open %s", dir);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") != 0) continue;
        char path[8192];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        char *text = read_file(path, &len);
        CHECK(text != NULL, "cannot read %s", path);
        if (!text) continue;
        cJSON *doc = cJSON_ParseWithLength(text, len);
        CHECK(doc != NULL, "%s is not valid JSON", path);
        if (doc) {
            files++;
            run_tables(de->d_name, cJSON_GetObjectItemCaseSensitive(doc, "tables"));
            run_errors(de->d_name, cJSON_GetObjectItemCaseSensitive(doc, "errors"));
            run_validate(de->d_name, cJSON_GetObjectItemCaseSensitive(doc, "validate"));
        }
        cJSON_Delete(doc);
        free(text);
    }
    closedir(d);
    CHECK(files >= 8, "found only %d vector files in %s", files, dir);
}

/* ------------------------------------------------------------------------------------------------
 * Random cross-check against the reference evaluator */

/* Small pools, so that keys and values collide often enough for both outcomes to be common. Like
 * real metadata, each key usually holds one type (KEY_TYPE), sometimes another. */
static const char *const KEYS[] = {"a", "b", "\xc3\xa9", "k\"q"};
static const int KEY_TYPE[] = {0, 1, 2, 1};
static const char *const STRS[] = {"\xc3\xa9\xe6\x97\xa5", "\xf0\x9f\x98\x80", "a\"b\\c\n"};
static const double NUMS[] = {1, 2.5, -1e300};

#define PICK(rng, arr) (arr[s3v_rng_below(rng, sizeof arr / sizeof arr[0])])

static cJSON *gen_scalar(s3v_rng *r, int key)
{
    int type = s3v_rng_below(r, 5) == 0 ? (int)s3v_rng_below(r, 3) : KEY_TYPE[key];
    switch (type) {
    case 0: return cJSON_CreateString(PICK(r, STRS));
    case 1: return cJSON_CreateNumber(PICK(r, NUMS));
    default: return cJSON_CreateBool(s3v_rng_below(r, 2));
    }
}

static cJSON *gen_meta_value(s3v_rng *r, int key)
{
    uint64_t k = s3v_rng_below(r, 20);
    if (k < 13) return gen_scalar(r, key);
    if (k < 18) {
        cJSON *a = cJSON_CreateArray();
        uint64_t n = s3v_rng_below(r, 4);
        for (uint64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, gen_scalar(r, key));
        return a;
    }
    if (k == 18) return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "x", gen_scalar(r, key));
    return o;
}

static cJSON *gen_metadata(s3v_rng *r)
{
    cJSON *m = cJSON_CreateObject();
    uint64_t n = s3v_rng_below(r, 8);
    for (uint64_t i = 0; i < n; i++) {
        int key = (int)s3v_rng_below(r, 4); /* may repeat: the first occurrence counts */
        cJSON_AddItemToObject(m, KEYS[key], gen_meta_value(r, key));
    }
    return m;
}

static cJSON *gen_operand(s3v_rng *r, const char *op, int key)
{
    if (op[1] == 'g' || op[1] == 'l') return cJSON_CreateNumber(PICK(r, NUMS));
    if (strcmp(op, "$exists") == 0) return cJSON_CreateBool(s3v_rng_below(r, 2));
    if (strcmp(op, "$in") == 0 || strcmp(op, "$nin") == 0) {
        cJSON *a = cJSON_CreateArray();
        uint64_t n = 1 + s3v_rng_below(r, 3);
        for (uint64_t i = 0; i < n; i++) cJSON_AddItemToArray(a, gen_scalar(r, key));
        return a;
    }
    return gen_scalar(r, key);
}

static const char *const OPNAMES[] = {"$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists"};

/* A valid filter object: 1 or 2 members, each a $and/$or of 1-3 filters (down to depth 4), an
 * implicit equality, or a key with 1 or 2 operators. */
static cJSON *gen_filter(s3v_rng *r, int depth)
{
    cJSON *f = cJSON_CreateObject();
    uint64_t members = 1 + (s3v_rng_below(r, 4) == 0);
    for (uint64_t i = 0; i < members; i++) {
        int key = (int)s3v_rng_below(r, 4);
        if (depth < 4 && s3v_rng_below(r, 4) == 0) {
            cJSON *arr = cJSON_CreateArray();
            uint64_t n = 1 + s3v_rng_below(r, 3);
            for (uint64_t j = 0; j < n; j++) cJSON_AddItemToArray(arr, gen_filter(r, depth + 1));
            cJSON_AddItemToObject(f, s3v_rng_below(r, 2) ? "$and" : "$or", arr);
        } else if (s3v_rng_below(r, 3) == 0) {
            cJSON_AddItemToObject(f, KEYS[key], gen_scalar(r, key));
        } else {
            cJSON *ops = cJSON_CreateObject();
            uint64_t n = 1 + (s3v_rng_below(r, 3) == 0);
            for (uint64_t j = 0; j < n; j++) {
                const char *op = PICK(r, OPNAMES);
                cJSON_AddItemToObject(ops, op, gen_operand(r, op, key));
            }
            cJSON_AddItemToObject(f, KEYS[key], ops);
        }
    }
    return f;
}

static void test_random_crosscheck(void)
{
    s3v_rng r;
    s3v_rng_seed(&r, 20250715);
    int n_filters = 800, per_filter = 12;
    long evals = 0, matched = 0, mismatches = 0;
    for (int i = 0; i < n_filters; i++) {
        cJSON *flt = gen_filter(&r, 1);
        s3v_filter *f = NULL;
        s3v_status st = filter_compile(flt, &f);
        if (st != S3V_OK) {
            char *ft = cJSON_PrintUnformatted(flt);
            CHECK(st == S3V_OK, "random filter %s did not compile: %s", ft, s3v_errmsg(st));
            free(ft);
            cJSON_Delete(flt);
            continue;
        }
        for (int j = 0; j < per_filter; j++) {
            cJSON *meta = gen_metadata(&r);
            char *text = cJSON_PrintUnformatted(meta);
            size_t len = strlen(text), rlen;
            char *re = respell(text, len, &r, &rlen);
            int want = ref_match(flt, (const uint8_t *)text, len);
            int got = match_exact(f, text, len);
            int got_re = match_exact(f, re, rlen);
            evals++;
            matched += want;
            if (got != want || got_re != want) {
                if (mismatches++ < 5) {
                    char *ft = cJSON_PrintUnformatted(flt);
                    fprintf(stderr,
                            "mismatch: filter %s metadata %s (re-spelled %.*s): got %d/%d, reference %d\n",
                            ft, text, (int)rlen, re, got, got_re, want);
                    free(ft);
                }
            }
            free(re);
            free(text);
            cJSON_Delete(meta);
        }
        filter_free(f);
        cJSON_Delete(flt);
    }
    CHECK(mismatches == 0, "%ld of %ld random evaluations disagree with the reference", mismatches, evals);
    /* A generator that always (or never) matches would test little. */
    CHECK(matched > evals / 10 && matched < evals * 9 / 10, "degenerate random cases: %ld of %ld matched",
          matched, evals);
    printf("random cross-check: %ld evaluations, %ld matched, %ld mismatches\n", evals, matched, mismatches);
}

/* ------------------------------------------------------------------------------------------------
 * Bounds and the smaller API */

static char *repeat_join(const char *head, const char *item_fmt, int n, const char *sep, const char *tail)
{
    size_t cap = strlen(head) + strlen(tail) + (size_t)n * (strlen(item_fmt) + strlen(sep) + 24) + 1;
    char *s = malloc(cap), *p = s;
    p += sprintf(p, "%s", head);
    for (int i = 0; i < n; i++) {
        if (i) p += sprintf(p, "%s", sep);
        p += sprintf(p, item_fmt, i);
    }
    sprintf(p, "%s", tail);
    return s;
}

static void expect_error(const char *text, const char *want)
{
    s3v_filter *f = NULL;
    s3v_error_clear();
    s3v_status st = filter_compile_text(text, strlen(text), &f);
    CHECK(st == S3V_ERR_INVALID, "expected S3V_ERR_INVALID, got %s", s3v_status_name(st));
    CHECK(strcmp(s3v_errmsg(st), want) == 0, "message\n  got  %s\n  want %s", s3v_errmsg(st), want);
    filter_free(f);
}

static void test_limits(void)
{
    /* Nodes: one leaf plus 1023 $in values is exactly the budget. */
    char *ok = repeat_join("{\"a\":{\"$in\":[", "%d", S3V_FILTER_MAX_NODES - 1, ",", "]}}");
    s3v_filter *f = compile_str(ok);
    CHECK(f != NULL, "1024 nodes should compile");
    if (f) {
        CHECK(match_str(f, "{\"a\":1022}") == 1, "last $in value");
        CHECK(match_str(f, "{\"a\":1023}") == 0, "past the last $in value");
    }
    filter_free(f);
    free(ok);
    char *bad = repeat_join("{\"a\":{\"$in\":[", "%d", S3V_FILTER_MAX_NODES, ",", "]}}");
    expect_error(bad, "filter.a.$in[1023]: filter has more than 1024 clauses and values");
    free(bad);

    /* Distinct keys. */
    ok = repeat_join("{", "\"k%d\":1", S3V_FILTER_MAX_KEYS, ",", "}");
    f = compile_str(ok);
    CHECK(f != NULL, "64 keys should compile");
    char *meta = repeat_join("{", "\"k%d\":1", S3V_FILTER_MAX_KEYS, ",", "}");
    if (f) {
        CHECK(match_str(f, meta) == 1, "all 64 keys present");
        meta[strlen(meta) - 2] = '2'; /* k63 = 2 */
        CHECK(match_str(f, meta) == 0, "k63 differs");
    }
    filter_free(f);
    free(ok);
    free(meta);
    bad = repeat_join("{", "\"k%d\":1", S3V_FILTER_MAX_KEYS + 1, ",", "}");
    expect_error(bad, "filter.k64: filter references more than 64 distinct keys");
    free(bad);
    /* The same key many times counts once. */
    ok = repeat_join("{\"$or\":[", "{\"k\":%d}", 200, ",", "]}");
    f = compile_str(ok);
    CHECK(f != NULL && match_str(f, "{\"k\":199}") == 1, "one key used 200 times");
    filter_free(f);
    free(ok);

    /* Key size: 1024 bytes is accepted and matches; 1025 is refused (the path shows it shortened). */
    char key[S3V_FILTER_MAX_KEY_SIZE + 2];
    memset(key, 'k', sizeof key - 1);
    key[S3V_FILTER_MAX_KEY_SIZE] = '\0';
    char *text = malloc(4 * sizeof key);
    sprintf(text, "{\"%s\":true}", key);
    f = compile_str(text);
    CHECK(f != NULL, "1024-byte key");
    if (f) CHECK(match_str(f, text) == 1, "1024-byte key matches itself");
    filter_free(f);
    key[S3V_FILTER_MAX_KEY_SIZE] = 'k';
    key[S3V_FILTER_MAX_KEY_SIZE + 1] = '\0';
    sprintf(text, "{\"%s\":true}", key);
    char want[256];
    snprintf(want, sizeof want, "filter.%.45s...: key longer than 1024 bytes", key);
    expect_error(text, want);
    /* A metadata key longer than any filter key is skipped, not matched, and not an error. */
    f = compile_str("{\"k\":{\"$exists\":false}}");
    CHECK(f && match_str(f, text) == 1, "long metadata key is skipped");
    filter_free(f);
    free(text);

    /* Filter text size. */
    size_t big = S3V_FILTER_MAX_TEXT_SIZE;
    text = malloc(big + 2);
    memset(text, ' ', big + 1);
    memcpy(text, "{\"a\":1}", 7);
    s3v_filter *g = NULL;
    s3v_status st = filter_compile_text(text, big, &g);
    CHECK(st == S3V_OK, "filter text of exactly the limit: %s", s3v_errmsg(st));
    filter_free(g);
    g = NULL;
    st = filter_compile_text(text, big + 1, &g);
    CHECK(st == S3V_ERR_INVALID && strcmp(s3v_errmsg(st), "filter: text larger than 65536 bytes") == 0, "%s",
          s3v_errmsg(st));
    free(text);
}

static void test_hostile_inline(void)
{
    s3v_filter *taut = compile_str("{\"$or\":[{\"a\":{\"$exists\":true}},{\"a\":{\"$exists\":false}}]}");
    s3v_filter *eq = compile_str("{\"a\":\"x\"}");
    REQUIRE(taut && eq, "compile");

    /* A NUL byte is a raw control character: malformed. The escaped form is a valid string. */
    static const char nul_raw[] = "{\"a\":\"x\0\"}";
    CHECK(match_exact(taut, nul_raw, sizeof nul_raw - 1) == 0, "raw NUL in a string");
    CHECK(match_str(taut, "{\"a\":\"x\\u0000\"}") == 1, "escaped NUL is well-formed");
    CHECK(match_str(eq, "{\"a\":\"x\\u0000\"}") == 0, "x\\u0000 is not x");
    CHECK(match_exact(eq, "{\"a\":\"x\"}\0", 10) == 0, "NUL after the object is garbage");

    /* Very deep nesting, closed or not: rejected quickly, no stack overflow. */
    size_t n = 1000000;
    char *deep = malloc(n * 2 + 16);
    char *p = deep + sprintf(deep, "{\"a\":");
    memset(p, '[', n);
    memset(p + n, ']', n);
    p[2 * n] = '}';
    size_t len = (size_t)(p - deep) + 2 * n + 1;
    CHECK(match_exact(taut, deep, len) == 0, "a million nested lists");
    CHECK(match_exact(taut, deep, (size_t)(p - deep) + n) == 0, "a million unclosed lists");
    memset(p, '{', n);
    CHECK(match_exact(taut, deep, (size_t)(p - deep) + n) == 0, "a million unclosed objects");
    free(deep);

    /* Nesting right at the bound (an array 31 deep inside the top-level object) is well-formed. */
    char lim[128];
    p = lim + sprintf(lim, "{\"a\":");
    for (int i = 0; i < S3V_FILTER_MAX_METADATA_DEPTH - 1; i++) *p++ = '[';
    for (int i = 0; i < S3V_FILTER_MAX_METADATA_DEPTH - 1; i++) *p++ = ']';
    *p++ = '}';
    CHECK(match_exact(taut, lim, (size_t)(p - lim)) == 1, "nesting at the bound");

    /* Long strings and many keys scan fine; every truncation fails. */
    size_t big = 200000;
    char *s = malloc(big + 64);
    p = s + sprintf(s, "{\"b\":\"");
    memset(p, 'y', big);
    p += big;
    p += sprintf(p, "\",\"a\":\"x\"}");
    len = (size_t)(p - s);
    CHECK(match_exact(eq, s, len) == 1, "key after a 200 kB string");
    CHECK(match_exact(eq, s, len - 1) == 0, "truncated by one byte");
    free(s);

    /* Every byte value at every position of a small valid text: no crash, and a mutation that keeps
     * the tautology true must still be well-formed JSON per cJSON (checked by the reference). */
    const char *base = "{\"a\":[\"x\\u00e9\",1.5e3,true,null],\"b\":{\"c\":-0}}";
    size_t blen = strlen(base);
    char *buf = malloc(blen);
    int disagreements = 0;
    cJSON *tdoc = cJSON_Parse("{\"$or\":[{\"a\":{\"$exists\":true}},{\"a\":{\"$exists\":false}}]}");
    for (size_t i = 0; i < blen; i++) {
        for (int b = 0; b < 256; b++) {
            memcpy(buf, base, blen);
            buf[i] = (char)b;
            int ours = match_exact(taut, buf, blen);
            /* We may be stricter than cJSON (control characters, leading zeros), never laxer. */
            if (ours && !ref_match(tdoc, (const uint8_t *)buf, blen)) disagreements++;
        }
    }
    CHECK(disagreements == 0, "%d single-byte mutations we accept but cJSON rejects", disagreements);
    cJSON_Delete(tdoc);
    free(buf);

    filter_free(taut);
    filter_free(eq);
}

/* Strings are scanned 8 bytes at a time: put each kind of byte at every offset of strings of
 * every short length, ending at every distance from the end of the buffer. */
static void test_string_offsets(void)
{
    static const uint8_t kinds[] = {0x01, 0x1f, 0x20, 0x21, '"', '\\', 0x5b, 0x7f, 0x80, 0xc3, 0xff, 'n'};
    s3v_filter *taut = compile_str("{\"$or\":[{\"a\":{\"$exists\":true}},{\"a\":{\"$exists\":false}}]}");
    REQUIRE(taut != NULL, "compile");
    int wrong = 0, cases = 0;
    for (size_t ki = 0; ki < sizeof kinds; ki++) {
        for (int before = 0; before < 18; before++) {
            for (int after = 0; after < 18; after++) {
                uint8_t text[64], value[64];
                size_t n = 0, vn = 0;
                memcpy(text, "{\"a\":\"", 6);
                n = 6;
                for (int i = 0; i < before; i++) text[n++] = value[vn++] = 'x';
                uint8_t ch = kinds[ki];
                int valid = ch >= 0x20 && ch != '"';
                if (ch == '\\') { /* as an escape: \n */
                    text[n++] = '\\';
                    text[n++] = 'n';
                    value[vn++] = '\n';
                } else {
                    text[n++] = value[vn++] = ch;
                }
                for (int i = 0; i < after; i++) text[n++] = value[vn++] = 'y';
                text[n++] = '"';
                text[n++] = '}';
                if (ch == '\\') valid = 1;
                /* A filter {"a": value} built as a tree (the value may not be valid UTF-8). */
                value[vn] = '\0';
                int want_eq = valid; /* bytes compare as bytes, valid UTF-8 or not */
                cases++;
                if (match_exact(taut, text, n) != valid) wrong++;
                if (want_eq) {
                    cJSON *doc = cJSON_CreateObject();
                    cJSON_AddStringToObject(doc, "a", (const char *)value);
                    s3v_filter *eq = NULL;
                    if (filter_compile(doc, &eq) != S3V_OK || match_exact(eq, text, n) != 1) wrong++;
                    filter_free(eq);
                    cJSON_Delete(doc);
                }
            }
        }
    }
    CHECK(wrong == 0, "%d of %d string-offset cases wrong", wrong, cases);
    filter_free(taut);
}

static void test_references(void)
{
    s3v_filter *f = compile_str("{\"$or\":[{\"a\":1},{\"b\":{\"$exists\":false}}],\"c\":{\"$nin\":[1]}}");
    REQUIRE(f != NULL, "compile");
    CHECK(filter_references(f, "a") && filter_references(f, "b") && filter_references(f, "c"), "a, b, c");
    CHECK(!filter_references(f, "d") && !filter_references(f, "A") && !filter_references(f, ""),
          "not d, A, ''");
    const char *nf_ok[] = {"text", "d"};
    CHECK(filter_check_filterable(f, nf_ok, 2) == S3V_OK, "no non-filterable key used");
    CHECK(filter_check_filterable(f, NULL, 0) == S3V_OK, "no non-filterable keys at all");
    const char *nf_bad[] = {"text", "b"};
    s3v_status st = filter_check_filterable(f, nf_bad, 2);
    CHECK(st == S3V_ERR_INVALID, "b is non-filterable");
    CHECK(strcmp(s3v_errmsg(st),
                 "filter: metadata key 'b' is non-filterable and cannot be used in a filter") == 0,
          "%s", s3v_errmsg(st));
    filter_free(f);
    filter_free(NULL);

    s3v_filter *out = NULL;
    CHECK(filter_compile(NULL, &out) == S3V_ERR_INVALID && out == NULL, "NULL document");
}

static void test_validate_limits(void)
{
    /* Sizes: key bytes + value bytes; numbers 8, booleans 1, lists the sum of their elements. */
    cJSON *m = cJSON_Parse("{\"n\":1,\"b\":[true,1,\"xy\"],\"\xc3\xa9\":\"\xe6\x97\xa5\xe6\x9c\xac\"}");
    size_t total, filterable;
    const char *nf[] = {"b"};
    metadata_size(m, nf, 1, &total, &filterable);
    CHECK(total == 9 + 12 + 8, "total %zu", total);
    CHECK(filterable == 9 + 8, "filterable %zu", filterable);
    cJSON_Delete(m);
    metadata_size(NULL, NULL, 0, &total, &filterable);
    CHECK(total == 0 && filterable == 0, "NULL metadata has size 0");
    CHECK(metadata_validate(NULL, NULL, 0) == S3V_OK, "no metadata is valid");

    /* Key count. */
    m = cJSON_CreateObject();
    char key[16];
    for (int i = 0; i < S3V_METADATA_MAX_KEYS; i++) {
        snprintf(key, sizeof key, "k%d", i);
        cJSON_AddNumberToObject(m, key, i);
    }
    CHECK(metadata_validate(m, NULL, 0) == S3V_OK, "50 keys");
    cJSON_AddNumberToObject(m, "k50", 50);
    s3v_status st = metadata_validate(m, NULL, 0);
    CHECK(st == S3V_ERR_INVALID && strcmp(s3v_errmsg(st), "metadata: has 51 keys, at most 50 allowed") == 0,
          "%s", s3v_errmsg(st));
    cJSON_Delete(m);

    /* Filterable size: exactly 2048 passes, 2049 fails, unless the key is non-filterable. */
    char *val = malloc(S3V_METADATA_MAX_SIZE + 2);
    memset(val, 'v', S3V_FILTERABLE_METADATA_MAX_SIZE - 1);
    val[S3V_FILTERABLE_METADATA_MAX_SIZE - 1] = '\0';
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "k", val);
    CHECK(metadata_validate(m, NULL, 0) == S3V_OK, "filterable 2048 bytes");
    cJSON_Delete(m);
    val[S3V_FILTERABLE_METADATA_MAX_SIZE - 1] = 'v';
    val[S3V_FILTERABLE_METADATA_MAX_SIZE] = '\0';
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "k", val);
    st = metadata_validate(m, NULL, 0);
    CHECK(st == S3V_ERR_INVALID &&
              strcmp(s3v_errmsg(st),
                     "metadata: filterable metadata must have at most 2048 bytes (has 2049)") == 0,
          "%s", s3v_errmsg(st));
    const char *nfk[] = {"other", "k"};
    CHECK(metadata_validate(m, nfk, 2) == S3V_OK, "non-filterable key does not count toward 2048");
    cJSON_Delete(m);

    /* Total size: 40960 passes, 40961 fails, non-filterable or not. */
    memset(val, 'v', S3V_METADATA_MAX_SIZE - 4);
    val[S3V_METADATA_MAX_SIZE - 4] = '\0';
    m = cJSON_CreateObject();
    cJSON_AddStringToObject(m, "text", val);
    const char *nft[] = {"text"};
    CHECK(metadata_validate(m, nft, 1) == S3V_OK, "total 40960 bytes");
    cJSON_AddBoolToObject(m, "", 1); /* 0-byte key + 1-byte boolean */
    st = metadata_validate(m, nft, 1);
    CHECK(st == S3V_ERR_INVALID &&
              strcmp(s3v_errmsg(st), "metadata: total metadata must have at most 40960 bytes (has 40961)") ==
                  0,
          "%s", s3v_errmsg(st));
    cJSON_Delete(m);
    free(val);
}

int main(void)
{
    s3v_rng_seed(&vec_rng, 1);
    test_vector_files();
    test_random_crosscheck();
    test_limits();
    test_hostile_inline();
    test_string_offsets();
    test_references();
    test_validate_limits();
    return TEST_SUMMARY();
}
