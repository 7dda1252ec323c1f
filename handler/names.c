/* handler/names.c: name and ARN validation. */
#include "handler/names.h"

#include <stdio.h>
#include <string.h>

static int is_alnum_lower(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

static const char *name_problem(const char *s, size_t n, int allow_dot)
{
    if (n < 3 || n > 63) return "must be between 3 and 63 characters long";
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (is_alnum_lower(c) || c == '-' || (allow_dot && c == '.')) continue;
        return allow_dot ? "may contain only lowercase letters, digits, hyphens and periods"
                         : "may contain only lowercase letters, digits and hyphens";
    }
    if (!is_alnum_lower(s[0]) || !is_alnum_lower(s[n - 1]))
        return "must begin and end with a letter or digit";
    return NULL;
}

const char *hd_name_bucket_problem(const char *s, size_t n) { return name_problem(s, n, 0); }

const char *hd_name_index_problem(const char *s, size_t n) { return name_problem(s, n, 1); }

/* Consumes "arn:<partition>:s3vectors:<region>:<account>:bucket/" and returns the rest, or NULL. */
static const char *arn_prefix(const char *s, size_t n, size_t *rest_len)
{
    const char *p = s, *end = s + n;
    if (n < 4 || memcmp(p, "arn:", 4) != 0) return NULL;
    p += 4;
    if (end - p < 3 || memcmp(p, "aws", 3) != 0) return NULL;
    p += 3;
    if (p < end && *p == '-') {
        p++;
        const char *q = p;
        while (p < end && (is_alnum_lower(*p) || *p == '-')) p++;
        if (p == q) return NULL;
    }
    static const char svc[] = ":s3vectors:";
    if ((size_t)(end - p) < sizeof svc - 1 || memcmp(p, svc, sizeof svc - 1) != 0) return NULL;
    p += sizeof svc - 1;
    const char *q = p;
    while (p < end && (is_alnum_lower(*p) || *p == '-')) p++;
    if (p == q || p >= end || *p != ':') return NULL;
    p++;
    for (int i = 0; i < 12; i++, p++)
        if (p >= end || *p < '0' || *p > '9') return NULL;
    static const char bucket[] = ":bucket/";
    if ((size_t)(end - p) < sizeof bucket - 1 || memcmp(p, bucket, sizeof bucket - 1) != 0) return NULL;
    p += sizeof bucket - 1;
    *rest_len = (size_t)(end - p);
    return p;
}

static const char ARN_INDEX_SHAPE[] =
    "must be an index ARN: arn:aws:s3vectors:<region>:<account id>:bucket/<bucket name>/index/<index name>";
static const char ARN_BUCKET_SHAPE[] =
    "must be a vector bucket ARN: arn:aws:s3vectors:<region>:<account id>:bucket/<bucket name>";

const char *hd_arn_parse_index(const char *arn, size_t n, char *vb, char *idx)
{
    size_t rl;
    const char *r = arn_prefix(arn, n, &rl);
    if (!r) return ARN_INDEX_SHAPE;
    const char *slash = memchr(r, '/', rl);
    if (!slash) return ARN_INDEX_SHAPE;
    size_t bl = (size_t)(slash - r);
    static const char mid[] = "/index/";
    if (rl - bl < sizeof mid - 1 || memcmp(slash, mid, sizeof mid - 1) != 0) return ARN_INDEX_SHAPE;
    const char *ip = slash + sizeof mid - 1;
    size_t il = rl - bl - (sizeof mid - 1);
    if (hd_name_bucket_problem(r, bl) || hd_name_index_problem(ip, il))
        return "names a vector bucket or index that is not a valid name";
    memcpy(vb, r, bl);
    vb[bl] = 0;
    memcpy(idx, ip, il);
    idx[il] = 0;
    return NULL;
}

const char *hd_arn_parse_bucket(const char *arn, size_t n, char *vb)
{
    size_t rl;
    const char *r = arn_prefix(arn, n, &rl);
    if (!r) return ARN_BUCKET_SHAPE;
    if (hd_name_bucket_problem(r, rl)) return "names a vector bucket that is not a valid name";
    memcpy(vb, r, rl);
    vb[rl] = 0;
    return NULL;
}

void hd_arn_format_index(char *out, size_t out_size, const char *region, const char *account, const char *vb,
                         const char *idx)
{
    snprintf(out, out_size, "arn:aws:s3vectors:%s:%s:bucket/%s/index/%s", region, account, vb, idx);
}
