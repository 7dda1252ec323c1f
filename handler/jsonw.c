/* handler/jsonw.c: JSON text writer (strings, shortest float32 numbers). */
#include "handler/jsonw.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

s3v_status hd_json_raw(s3v_buf *b, const char *s) { return s3v_buf_append(b, s, strlen(s)); }

s3v_status hd_json_raw_n(s3v_buf *b, const void *p, size_t n) { return s3v_buf_append(b, p, n); }

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes there are not one. */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) return 0; /* overlong */
    if (cp >= 0xD800 && cp <= 0xDFFF) return 0;                                              /* surrogate */
    return len;
}

s3v_status hd_json_str_body(s3v_buf *b, const void *data, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const uint8_t *p = data;
    size_t i = 0;
    /* worst case grows 6x; reserve the common case (no escapes) once */
    S3V_TRY(s3v_buf_reserve(b, n));
    while (i < n) {
        size_t run = i;
        while (run < n && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\') run++;
        if (run > i) {
            S3V_TRY(s3v_buf_append(b, p + i, run - i));
            i = run;
            if (i >= n) break;
        }
        uint8_t c = p[i];
        char esc[8];
        size_t el = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            el = 2;
        } else if (c < 0x20) {
            esc[0] = '\\';
            switch (c) {
            case '\n':
                esc[1] = 'n';
                el = 2;
                break;
            case '\r':
                esc[1] = 'r';
                el = 2;
                break;
            case '\t':
                esc[1] = 't';
                el = 2;
                break;
            case '\b':
                esc[1] = 'b';
                el = 2;
                break;
            case '\f':
                esc[1] = 'f';
                el = 2;
                break;
            default:
                memcpy(esc + 1, "u00", 3);
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                el = 6;
            }
        } else {
            size_t sl = utf8_seq(p + i, n - i);
            if (sl) {
                S3V_TRY(s3v_buf_append(b, p + i, sl));
                i += sl;
                continue;
            }
            memcpy(esc, "\\ufffd", 6);
            el = 6;
        }
        S3V_TRY(s3v_buf_append(b, esc, el));
        i++;
    }
    return S3V_OK;
}

s3v_status hd_json_str(s3v_buf *b, const void *p, size_t n)
{
    S3V_TRY(s3v_buf_append(b, "\"", 1));
    S3V_TRY(hd_json_str_body(b, p, n));
    return s3v_buf_append(b, "\"", 1);
}

s3v_status hd_json_cstr(s3v_buf *b, const char *s) { return hd_json_str(b, s, strlen(s)); }

/* 10^k as a double: exact for |k| <= 22. */
static double pow10_pos(int k)
{
    static const double t[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    double r = 1.0;
    while (k > 22) {
        r *= 1e22;
        k -= 22;
    }
    return r * t[k];
}

/* M * 10^k for an integer mantissa M. */
static double scale10(double m, int k) { return k >= 0 ? m * pow10_pos(k) : m / pow10_pos(-k); }

/* The p-digit rounding of d: *m in [10^(p-1), 10^p) with d ~ m * 10^(*e10 - p + 1); *e10 is corrected
 * when log10 was off by one or rounding carried into a new digit. 0 if no consistent answer. */
static int digits_at(double d, int p, int *e10, uint64_t *m)
{
    for (int tries = 0; tries < 3; tries++) {
        double r = nearbyint(scale10(d, p - 1 - *e10));
        if (r >= pow10_pos(p)) {
            (*e10)++;
            continue;
        }
        if (r < pow10_pos(p - 1)) {
            (*e10)--;
            continue;
        }
        *m = (uint64_t)r;
        return 1;
    }
    return 0;
}

size_t hd_json_format_f32(float v, char *out)
{
    if (!isfinite(v)) {
        memcpy(out, "null", 5);
        return 4;
    }
    if (v == 0.0f) {
        memcpy(out, "0", 2);
        return 1;
    }
    double d = fabs((double)v);
    int e10 = (int)floor(log10(d));
    uint64_t mant = 0;
    int found = 0;
    /* the smallest precision p in 1..9 that reads back as v: round-tripping is monotonic in p, so
     * binary search (3-4 probes instead of up to 9) */
    int lo = 1, hi = 9;
    while (lo <= hi) {
        int p = (lo + hi) / 2, pe = e10;
        uint64_t m;
        if (digits_at(d, p, &pe, &m) && (float)scale10((double)m, pe - p + 1) == (float)d) {
            found = 1;
            mant = m;
            e10 = pe;
            hi = p - 1;
        } else {
            lo = p + 1;
        }
    }
    size_t n = 0;
    char digits[24];
    int nd = 0;
    if (found) {
        char tmp[24];
        int tn = 0;
        while (mant) {
            tmp[tn++] = (char)('0' + mant % 10);
            mant /= 10;
        }
        while (tn > 1 && tmp[0] == '0') { /* strip trailing zeros (stored reversed) */
            memmove(tmp, tmp + 1, (size_t)--tn);
        }
        for (int i = 0; i < tn; i++) digits[nd++] = tmp[tn - 1 - i];
        if (v < 0) out[n++] = '-';
        if (e10 >= 16 || e10 < -4) { /* Python's repr switches at the same points */
            out[n++] = digits[0];
            if (nd > 1) {
                out[n++] = '.';
                for (int i = 1; i < nd; i++) out[n++] = digits[i];
            }
            n += (size_t)snprintf(out + n, 16, "e%d", e10);
        } else if (e10 < 0) {
            out[n++] = '0';
            out[n++] = '.';
            for (int i = 0; i < -e10 - 1; i++) out[n++] = '0';
            for (int i = 0; i < nd; i++) out[n++] = digits[i];
        } else {
            for (int i = 0; i <= e10; i++) out[n++] = i < nd ? digits[i] : '0';
            if (nd > e10 + 1) {
                out[n++] = '.';
                for (int i = e10 + 1; i < nd; i++) out[n++] = digits[i];
            }
        }
        out[n] = 0;
        /* the text must read back as the same float (guards double rounding) */
        if (strtof(out, NULL) == v) return n;
    }
    return (size_t)snprintf(out, 32, "%.9g", (double)v);
}

s3v_status hd_json_f32(s3v_buf *b, float v)
{
    char tmp[40];
    size_t n = hd_json_format_f32(v, tmp);
    return s3v_buf_append(b, tmp, n);
}

s3v_status hd_json_f64(s3v_buf *b, double v)
{
    if (!isfinite(v)) return s3v_buf_append(b, "null", 4);
    char tmp[40];
    for (int p = 6; p <= 17; p++) {
        int n = snprintf(tmp, sizeof tmp, "%.*g", p, v);
        if (p == 17 || strtod(tmp, NULL) == v) return s3v_buf_append(b, tmp, (size_t)n);
    }
    return S3V_OK; /* not reached */
}

s3v_status hd_json_u64(s3v_buf *b, uint64_t v)
{
    char tmp[24];
    size_t n = sizeof tmp;
    do {
        tmp[--n] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return s3v_buf_append(b, tmp + n, sizeof tmp - n);
}
