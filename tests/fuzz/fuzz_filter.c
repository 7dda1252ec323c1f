/* tests/fuzz/fuzz_filter.c: fuzz target for engine/filter (filter compiler and metadata scanner).
 *
 * Input layout: the bytes up to the first '\n' are filter text, the bytes after it are metadata
 * text (no '\n': all filter, no metadata). Each input is used four ways:
 *  1. the whole input through filter_compile_text;
 *  2. the first line through filter_compile_text and, when it compiles, matched on the rest;
 *  3. the whole input as metadata, matched by fixed filters, with invariants that hold for every
 *     text: a filter and its negation ($eq/$ne, $in/$nin, $exists true/false) match exactly when the
 *     text is a well-formed object (a tautology matches), and never both;
 *  4. text the scanner accepts must also be accepted by cJSON (we may be stricter, never laxer);
 *  5. when the input is a cJSON object that metadata_validate accepts, the text the index builder
 *     would store (cJSON_PrintUnformatted) must scan as well-formed, and every key must match
 *     $exists and, for string and boolean values, its own value. (Numbers are left out: cJSON
 *     prints some doubles with 15 digits, so the stored value can differ from the parsed one.)
 * Corpus: tests/fuzz/corpus/filter/ (replayed by CTest as fuzz_filter). */
#include <stdlib.h>
#include <string.h>

#include "engine/filter.h"
#include "tests/fuzz/fuzz.h"

static const char *const FIXED[] = {
    /* 0: well-formed */ "{\"$or\":[{\"a\":{\"$exists\":true}},{\"a\":{\"$exists\":false}}]}",
    /* 1, 2 */ "{\"a\":{\"$eq\":\"x\"}}",
    "{\"a\":{\"$ne\":\"x\"}}",
    /* 3, 4 */ "{\"a\":{\"$in\":[1,\"\\u00e9\",true,\"\\ud83d\\ude00\"]}}",
    "{\"a\":{\"$nin\":[1,\"\\u00e9\",true,\"\\ud83d\\ude00\"]}}",
    /* 5, 6 */ "{\"b\":{\"$exists\":true}}",
    "{\"b\":{\"$exists\":false}}",
    /* 7, 8 */ "{\"b\":{\"$eq\":-2.5}}",
    "{\"b\":{\"$ne\":-2.5}}",
    /* 9 */ "{\"$and\":[{\"a\":{\"$gte\":0,\"$lt\":1e3}},{\"$or\":[{\"b\":false},{\"c\":{\"$gt\":1}}]}]}",
};
#define NFIXED (sizeof FIXED / sizeof FIXED[0])

static s3v_filter *fixed[NFIXED];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    for (size_t i = 0; i < NFIXED; i++) {
        if (filter_compile_text(FIXED[i], strlen(FIXED[i]), &fixed[i]) != S3V_OK) {
            fprintf(stderr, "fuzz_filter: fixed filter %zu does not compile: %s\n", i,
                    s3v_errmsg(S3V_ERR_INVALID));
            abort();
        }
    }
    return 0;
}

/* cJSON's view: exactly one object, whitespace around it. */
static int cjson_accepts_object(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return 1;
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, size, &end, 0);
    int ok = root && cJSON_IsObject(root);
    for (const char *p = end; ok && p < buf + size; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') ok = 0;
    cJSON_Delete(root);
    free(buf);
    return ok;
}

/* Step 5: metadata that passes validation is stored as minified text that the scanner accepts. */
static void check_validated_metadata(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (!buf) return;
    memcpy(buf, data, size);
    buf[size] = '\0';
    cJSON *meta = cJSON_ParseWithLength(buf, size);
    free(buf);
    if (!meta || metadata_validate(meta, NULL, 0) != S3V_OK) {
        cJSON_Delete(meta);
        return;
    }
    char *text = cJSON_PrintUnformatted(meta);
    if (!text) {
        cJSON_Delete(meta);
        return;
    }
    size_t len = strlen(text);
    FUZZ_ASSERT(filter_match(fixed[0], (const uint8_t *)text, len) == 1);
    for (const cJSON *m = meta->child; m; m = m->next) {
        cJSON *flt = cJSON_CreateObject();
        cJSON *ops = cJSON_CreateObject();
        cJSON_AddItemToObject(flt, m->string, ops);
        cJSON_AddBoolToObject(ops, "$exists", 1);
        if (cJSON_IsString(m) || cJSON_IsBool(m)) cJSON_AddItemToObject(ops, "$eq", cJSON_Duplicate(m, 0));
        s3v_filter *f = NULL;
        /* Keys starting with '$' or longer than the key bound are not filterable; skip them. */
        if (filter_compile(flt, &f) == S3V_OK) {
            FUZZ_ASSERT(filter_match(f, (const uint8_t *)text, len) == 1);
            FUZZ_ASSERT(filter_references(f, m->string) == 1);
            const char *nf[] = {m->string};
            FUZZ_ASSERT(filter_check_filterable(f, nf, 1) == S3V_ERR_INVALID);
            filter_free(f);
        }
        cJSON_Delete(flt);
    }
    free(text);
    cJSON_Delete(meta);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fixed[0]) LLVMFuzzerInitialize(NULL, NULL);

    /* 1. Everything as filter text. */
    s3v_filter *f = NULL;
    if (filter_compile_text((const char *)data, size, &f) == S3V_OK) {
        int m = filter_match(f, NULL, 0);
        FUZZ_ASSERT(m == 0 || m == 1);
        filter_free(f);
        f = NULL;
    }

    /* 2. First line as filter, the rest as metadata. */
    const uint8_t *nl = memchr(data, '\n', size);
    size_t flen = nl ? (size_t)(nl - data) : size;
    const uint8_t *meta = nl ? nl + 1 : NULL;
    size_t mlen = nl ? size - flen - 1 : 0;
    if (filter_compile_text((const char *)data, flen, &f) == S3V_OK) {
        int m = filter_match(f, meta, mlen);
        FUZZ_ASSERT(m == 0 || m == 1);
        filter_free(f);
    }

    /* 3. Everything as metadata, under invariants. */
    int r[NFIXED];
    for (size_t i = 0; i < NFIXED; i++) r[i] = filter_match(fixed[i], data, size);
    int wf = r[0];
    FUZZ_ASSERT(size > 0 || wf == 1);
    FUZZ_ASSERT(r[1] + r[2] == wf);
    FUZZ_ASSERT(r[3] + r[4] == wf);
    FUZZ_ASSERT(r[5] + r[6] == wf);
    FUZZ_ASSERT(r[7] + r[8] == wf);
    FUZZ_ASSERT(r[9] <= wf);

    /* 4. Never laxer than cJSON. */
    if (wf && size > 0) FUZZ_ASSERT(cjson_accepts_object(data, size));

    /* 5. Validated metadata, as the builder stores it. */
    check_validated_metadata(data, size);
    return 0;
}
