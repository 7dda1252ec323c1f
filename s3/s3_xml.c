/* s3/s3_xml.c: bounded XML scanning of S3 responses (see s3_xml.h). */
#include "s3/s3_xml.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIST_MAX_ENTRIES 10000
#define LIST_KEY_MAX     1024

void s3_xml_init(s3_xml *x, const uint8_t *data, size_t len)
{
    memset(x, 0, sizeof *x);
    x->p = (const char *)data;
    x->end = (const char *)data + (data ? len : 0);
}

static s3v_status bad(const char *what)
{
    return s3v_errorf(S3V_ERR_CORRUPT, "corrupt response from S3 (malformed XML: %s)", what);
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

/* Finds needle in [p, end); NULL when absent. */
static const char *find(const char *p, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    while ((size_t)(end - p) >= n) {
        const char *hit = memchr(p, needle[0], (size_t)(end - p) - n + 1);
        if (!hit) return NULL;
        if (memcmp(hit, needle, n) == 0) return hit;
        p = hit + 1;
    }
    return NULL;
}

static int starts(const char *p, const char *end, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(end - p) >= n && memcmp(p, s, n) == 0;
}

/* Local part of a qualified name. */
static void local_name(const char **name, size_t *len)
{
    const char *colon = memchr(*name, ':', *len);
    if (colon) {
        *len -= (size_t)(colon + 1 - *name);
        *name = colon + 1;
    }
}

s3v_status s3_xml_next(s3_xml *x, s3_xml_token *tok)
{
    memset(tok, 0, sizeof *tok);
    if (x->pending_end) {
        x->pending_end = 0;
        tok->kind = S3_XML_END;
        tok->ptr = x->pending_name;
        tok->len = x->pending_len;
        tok->depth = x->depth;
        x->depth--;
        if (x->depth == 0) x->root_done = 1;
        return S3V_OK;
    }
    for (;;) {
        if (x->p >= x->end) {
            if (x->depth) return bad("document ends inside an element");
            if (!x->root_done) return bad("no root element");
            tok->kind = S3_XML_EOF;
            return S3V_OK;
        }
        if (*x->p != '<') {
            const char *lt = memchr(x->p, '<', (size_t)(x->end - x->p));
            const char *stop = lt ? lt : x->end;
            const char *s = x->p;
            x->p = stop;
            if (x->depth == 0) {
                for (const char *q = s; q < stop; q++)
                    if (!is_ws(*q)) return bad("text outside the root element");
                continue;
            }
            tok->kind = S3_XML_TEXT;
            tok->ptr = s;
            tok->len = (size_t)(stop - s);
            tok->depth = x->depth;
            return S3V_OK;
        }
        if (starts(x->p, x->end, "<?")) {
            const char *e = find(x->p + 2, x->end, "?>");
            if (!e) return bad("unterminated processing instruction");
            x->p = e + 2;
            continue;
        }
        if (starts(x->p, x->end, "<!--")) {
            const char *e = find(x->p + 4, x->end, "-->");
            if (!e) return bad("unterminated comment");
            x->p = e + 3;
            continue;
        }
        if (starts(x->p, x->end, "<![CDATA[")) {
            const char *s = x->p + 9;
            const char *e = find(s, x->end, "]]>");
            if (!e) return bad("unterminated CDATA");
            if (x->depth == 0) return bad("CDATA outside the root element");
            x->p = e + 3;
            tok->kind = S3_XML_TEXT;
            tok->ptr = s;
            tok->len = (size_t)(e - s);
            tok->cdata = 1;
            tok->depth = x->depth;
            return S3V_OK;
        }
        if (starts(x->p, x->end, "<!")) return bad("DOCTYPE or declaration not accepted");
        int closing = starts(x->p, x->end, "</");
        const char *name = x->p + (closing ? 2 : 1), *q = name;
        while (q < x->end && !is_ws(*q) && *q != '/' && *q != '>' && *q != '<') q++;
        if (q == name || q >= x->end) return bad("bad tag");
        size_t name_len = (size_t)(q - name);
        /* skip attributes up to '>' honouring quotes */
        char quote = 0;
        while (q < x->end && (quote || *q != '>')) {
            if (quote) {
                if (*q == quote) quote = 0;
            } else if (*q == '"' || *q == '\'') {
                quote = *q;
            } else if (*q == '<') {
                return bad("'<' inside a tag");
            }
            q++;
        }
        if (q >= x->end) return bad("unterminated tag");
        int self_closing = !closing && q[-1] == '/';
        x->p = q + 1;
        if (closing) {
            if (x->depth == 0) return bad("closing tag without an open element");
            size_t top = (size_t)x->depth - 1;
            if (x->stack_len[top] != name_len || memcmp(x->stack[top], name, name_len) != 0)
                return bad("mismatched closing tag");
            tok->kind = S3_XML_END;
            tok->depth = x->depth;
            x->depth--;
            if (x->depth == 0) x->root_done = 1;
        } else {
            if (x->root_done) return bad("second root element");
            if (x->depth == S3_XML_MAX_DEPTH) return bad("elements nested too deeply");
            x->stack[x->depth] = name;
            x->stack_len[x->depth] = name_len;
            x->depth++;
            tok->kind = S3_XML_START;
            tok->depth = x->depth;
            if (self_closing) {
                x->pending_end = 1;
                x->pending_name = name;
                x->pending_len = name_len;
                local_name(&x->pending_name, &x->pending_len);
            }
        }
        local_name(&name, &name_len);
        tok->ptr = name;
        tok->len = name_len;
        return S3V_OK;
    }
}

/* Appends UTF-8 for code point cp; returns bytes written or 0 when it does not fit. */
static size_t put_utf8(unsigned long cp, char *out, size_t room)
{
    if (cp < 0x80 && room >= 1) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800 && room >= 2) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000 && cp >= 0x800 && room >= 3) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp >= 0x10000 && room >= 4) {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}

s3v_status s3_xml_unescape(const char *s, size_t n, char *out, size_t out_size, size_t *out_len)
{
    if (!out_size) return s3v_errorf(S3V_ERR_TOO_LARGE, "XML text does not fit");
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] != '&') {
            if (o + 1 >= out_size)
                return s3v_errorf(S3V_ERR_TOO_LARGE, "XML text longer than %zu bytes", out_size - 1);
            out[o++] = s[i++];
            continue;
        }
        const char *semi = memchr(s + i, ';', n - i < 12 ? n - i : 12);
        if (!semi) return bad("unterminated entity");
        const char *e = s + i + 1;
        size_t el = (size_t)(semi - e);
        char c = 0;
        unsigned long cp = 0;
        int numeric = 0;
        if (el == 2 && memcmp(e, "lt", 2) == 0)
            c = '<';
        else if (el == 2 && memcmp(e, "gt", 2) == 0)
            c = '>';
        else if (el == 3 && memcmp(e, "amp", 3) == 0)
            c = '&';
        else if (el == 4 && memcmp(e, "quot", 4) == 0)
            c = '"';
        else if (el == 4 && memcmp(e, "apos", 4) == 0)
            c = '\'';
        else if (el >= 2 && e[0] == '#') {
            numeric = 1;
            int hex = e[1] == 'x' || e[1] == 'X';
            size_t k = hex ? 2 : 1;
            if (k >= el) return bad("empty character reference");
            for (; k < el; k++) {
                int d;
                char ch = e[k];
                if (ch >= '0' && ch <= '9')
                    d = ch - '0';
                else if (hex && ch >= 'a' && ch <= 'f')
                    d = ch - 'a' + 10;
                else if (hex && ch >= 'A' && ch <= 'F')
                    d = ch - 'A' + 10;
                else
                    return bad("bad character reference");
                cp = cp * (hex ? 16 : 10) + (unsigned long)d;
                if (cp > 0x10FFFF) return bad("character reference out of range");
            }
            if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) return bad("character reference not allowed");
        } else {
            return bad("unknown entity");
        }
        if (numeric) {
            size_t w = o + 1 < out_size ? put_utf8(cp, out + o, out_size - 1 - o) : 0;
            if (!w) return s3v_errorf(S3V_ERR_TOO_LARGE, "XML text longer than %zu bytes", out_size - 1);
            o += w;
        } else {
            if (o + 1 >= out_size)
                return s3v_errorf(S3V_ERR_TOO_LARGE, "XML text longer than %zu bytes", out_size - 1);
            out[o++] = c;
        }
        i = (size_t)(semi - s) + 1;
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return S3V_OK;
}

int s3_xml_escape(const char *s, char *out, size_t out_size)
{
    size_t o = 0;
    for (; *s; s++) {
        const char *rep = NULL;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&apos;"; break;
        default: break;
        }
        size_t n = rep ? strlen(rep) : 1;
        if (o + n >= out_size) return -1;
        if (rep)
            memcpy(out + o, rep, n);
        else
            out[o] = *s;
        o += n;
    }
    if (o >= out_size) return -1;
    out[o] = 0;
    return 0;
}

/* Appends the decoded text of a TEXT token to (out, *len). */
static s3v_status append_text(const s3_xml_token *t, char *out, size_t out_size, size_t *len)
{
    if (*len >= out_size) return s3v_errorf(S3V_ERR_TOO_LARGE, "XML text does not fit");
    if (t->cdata) {
        if (*len + t->len + 1 > out_size) return s3v_errorf(S3V_ERR_TOO_LARGE, "XML text does not fit");
        memcpy(out + *len, t->ptr, t->len);
        *len += t->len;
        out[*len] = 0;
        return S3V_OK;
    }
    size_t n = 0;
    S3V_TRY(s3_xml_unescape(t->ptr, t->len, out + *len, out_size - *len, &n));
    *len += n;
    return S3V_OK;
}

static int name_is(const s3_xml_token *t, const char *name)
{
    return strlen(name) == t->len && memcmp(t->ptr, name, t->len) == 0;
}

s3v_status s3_xml_root(const uint8_t *data, size_t len, char *out, size_t out_size)
{
    s3_xml x;
    s3_xml_init(&x, data, len);
    s3_xml_token t;
    do {
        S3V_TRY(s3_xml_next(&x, &t));
    } while (t.kind != S3_XML_START && t.kind != S3_XML_EOF);
    if (t.kind != S3_XML_START) return bad("no root element");
    if (t.len >= out_size) return s3v_errorf(S3V_ERR_TOO_LARGE, "root element name too long");
    memcpy(out, t.ptr, t.len);
    out[t.len] = 0;
    return S3V_OK;
}

s3v_status s3_xml_find(const uint8_t *data, size_t len, const char *path, char *out, size_t out_size)
{
    const char *seg[S3_XML_MAX_DEPTH];
    size_t seg_len[S3_XML_MAX_DEPTH], nseg = 0;
    for (const char *p = path; *p && nseg < S3_XML_MAX_DEPTH;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        seg[nseg] = p;
        seg_len[nseg++] = n;
        p += n + (slash ? 1 : 0);
    }
    if (!nseg || !out_size) return s3v_errorf(S3V_ERR_INVALID, "empty XML path");
    int match[S3_XML_MAX_DEPTH + 1] = {1};
    s3_xml x;
    s3_xml_init(&x, data, len);
    s3_xml_token t;
    size_t olen = 0;
    int in_target = 0;
    out[0] = 0;
    for (;;) {
        S3V_TRY(s3_xml_next(&x, &t));
        if (t.kind == S3_XML_EOF) return S3V_ERR_NOT_FOUND;
        if (t.kind == S3_XML_START) {
            size_t d = (size_t)t.depth;
            match[d] = d <= nseg && match[d - 1] &&
                       ((seg_len[d - 1] == 1 && seg[d - 1][0] == '*') ||
                        (seg_len[d - 1] == t.len && memcmp(seg[d - 1], t.ptr, t.len) == 0));
            if (match[d] && d == nseg) in_target = 1;
        } else if (t.kind == S3_XML_TEXT) {
            if (in_target && (size_t)t.depth == nseg) S3V_TRY(append_text(&t, out, out_size, &olen));
        } else if (t.kind == S3_XML_END) {
            if (in_target && (size_t)t.depth == nseg) return S3V_OK;
        }
    }
}

/* ---- ListObjectsV2 ---------------------------------------------------------------------------- */

void s3_xml_list_free(s3_list_page *page)
{
    if (!page) return;
    for (size_t i = 0; i < page->count; i++) free(page->entries[i].key);
    free(page->entries);
    page->entries = NULL;
    page->count = 0;
}

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const s3_list_entry *)a)->key, ((const s3_list_entry *)b)->key);
}

static s3v_status parse_u64(const char *s, uint64_t *out)
{
    if (!*s) return bad("empty number");
    uint64_t v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9') return bad("bad number");
        if (v > (UINT64_MAX - 9) / 10) return bad("number out of range");
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    return S3V_OK;
}

s3v_status s3_xml_list_parse(const uint8_t *data, size_t len, s3_list_page *page)
{
    s3_list_page pg;
    memset(&pg, 0, sizeof pg);
    s3_xml x;
    s3_xml_init(&x, data, len);
    s3_xml_token t;
    s3v_status st = S3V_OK;
    char text[LIST_KEY_MAX + 1];
    size_t tlen = 0, cap = 0;
    int in_entry = 0, entry_prefix = 0, have_key = 0, have_token = 0, have_size = 0;
    char key[LIST_KEY_MAX + 1];
    uint64_t size = 0;
    for (;;) {
        S3V_CHECK(s3_xml_next(&x, &t));
        if (t.kind == S3_XML_EOF) break;
        if (t.kind == S3_XML_START) {
            tlen = 0;
            text[0] = 0;
            if (t.depth == 1 && !name_is(&t, "ListBucketResult")) {
                st = bad("expected ListBucketResult");
                goto fail;
            }
            if (t.depth == 2 && (name_is(&t, "Contents") || name_is(&t, "CommonPrefixes"))) {
                in_entry = 1;
                entry_prefix = name_is(&t, "CommonPrefixes");
                have_key = have_size = 0;
                size = 0;
            }
        } else if (t.kind == S3_XML_TEXT) {
            if (t.depth >= 2) {
                st = append_text(&t, text, sizeof text, &tlen);
                if (st == S3V_ERR_TOO_LARGE) st = bad("text longer than an S3 key");
                if (st != S3V_OK) goto fail;
            }
        } else { /* END */
            if (t.depth == 2 && name_is(&t, "IsTruncated")) {
                pg.truncated = strcmp(text, "true") == 0;
            } else if (t.depth == 2 && name_is(&t, "NextContinuationToken")) {
                if (tlen >= sizeof pg.next_token) {
                    st = bad("continuation token too long");
                    goto fail;
                }
                memcpy(pg.next_token, text, tlen + 1);
                have_token = tlen > 0;
            } else if (t.depth == 3 && in_entry &&
                       ((!entry_prefix && name_is(&t, "Key")) || (entry_prefix && name_is(&t, "Prefix")))) {
                memcpy(key, text, tlen + 1);
                have_key = 1;
            } else if (t.depth == 3 && in_entry && !entry_prefix && name_is(&t, "Size")) {
                S3V_CHECK(parse_u64(text, &size));
                have_size = 1;
            } else if (t.depth == 2 && in_entry) {
                in_entry = 0;
                if (!have_key || !key[0] || (!entry_prefix && !have_size)) {
                    st = bad(entry_prefix ? "common prefix without Prefix" : "entry without Key or Size");
                    goto fail;
                }
                if (pg.count == LIST_MAX_ENTRIES) {
                    st = bad("too many entries in one page");
                    goto fail;
                }
                if (pg.count == cap) {
                    size_t ncap = cap ? cap * 2 : 64;
                    s3_list_entry *e = realloc(pg.entries, ncap * sizeof *e);
                    if (!e) {
                        st = s3v_errorf(S3V_ERR_NOMEM, "out of memory listing");
                        goto fail;
                    }
                    pg.entries = e;
                    cap = ncap;
                }
                char *k = strdup(key);
                if (!k) {
                    st = s3v_errorf(S3V_ERR_NOMEM, "out of memory listing");
                    goto fail;
                }
                pg.entries[pg.count++] = (s3_list_entry){k, entry_prefix ? 0 : size, entry_prefix};
            }
            tlen = 0;
            text[0] = 0;
        }
    }
    if (pg.truncated && !have_token) {
        st = bad("truncated listing without NextContinuationToken");
        goto fail;
    }
    if (pg.count) qsort(pg.entries, pg.count, sizeof pg.entries[0], entry_cmp);
    *page = pg;
    return S3V_OK;
fail:
    s3_xml_list_free(&pg);
    return st;
}
