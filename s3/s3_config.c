/* s3/s3_config.c: URL parsing, credentials, region, endpoint and tunables (see s3_config.h). */
#include "s3/s3_config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/storage.h"

/* ---- small helpers ---------------------------------------------------------------------------- */

static const char *env_get(s3v_getenv_fn env, const char *name)
{
    const char *v = env ? env(name) : NULL;
    return v && *v ? v : NULL;
}

static s3v_status copy_field(char *dst, size_t cap, const char *src, const char *what)
{
    size_t n = strlen(src);
    if (n >= cap)
        return s3v_errorf(S3V_ERR_CONFIG, "%s is too long (%zu bytes, limit %zu)", what, n, cap - 1);
    memcpy(dst, src, n + 1);
    return S3V_OK;
}

static int is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

/* ---- s3://bucket/prefix ----------------------------------------------------------------------- */

static s3v_status check_bucket(const char *b, size_t n)
{
    if (n < 3 || n > 63) return s3v_errorf(S3V_ERR_INVALID, "bucket name must be 3 to 63 characters");
    if (!is_lower_alnum(b[0]) || !is_lower_alnum(b[n - 1]))
        return s3v_errorf(S3V_ERR_INVALID,
                          "bucket name must start and end with a lower-case letter or digit");
    for (size_t i = 0; i < n; i++) {
        if (!is_lower_alnum(b[i]) && b[i] != '.' && b[i] != '-')
            return s3v_errorf(S3V_ERR_INVALID, "bucket name may hold only a-z, 0-9, '.' and '-'");
        if (b[i] == '.' && i + 1 < n && b[i + 1] == '.')
            return s3v_errorf(S3V_ERR_INVALID, "bucket name has two adjacent dots");
    }
    return S3V_OK;
}

s3v_status s3_config_url_parse(const char *url, s3_config *cfg)
{
    if (!url || strncmp(url, "s3://", 5) != 0)
        return s3v_errorf(S3V_ERR_INVALID, "not an s3:// URL (expected s3://bucket[/prefix])");
    const char *b = url + 5;
    const char *slash = strchr(b, '/');
    size_t blen = slash ? (size_t)(slash - b) : strlen(b);
    S3V_TRY(check_bucket(b, blen));
    char prefix[S3_PREFIX_MAX];
    size_t plen = 0;
    if (slash) {
        const char *p = slash + 1;
        plen = strlen(p);
        while (plen && p[plen - 1] == '/') plen--;
        if (plen + 2 > sizeof prefix)
            return s3v_errorf(S3V_ERR_INVALID, "prefix longer than %d bytes", S3_PREFIX_MAX - 2);
        memcpy(prefix, p, plen);
        prefix[plen] = 0;
        if (plen) {
            s3v_status st = s3v_storage_key_check(prefix);
            if (st != S3V_OK) return s3v_error_context(st, "prefix of %s", url);
        }
    }
    memcpy(cfg->bucket, b, blen);
    cfg->bucket[blen] = 0;
    if (plen) {
        memcpy(cfg->prefix, prefix, plen);
        cfg->prefix[plen] = '/';
        cfg->prefix[plen + 1] = 0;
    } else {
        cfg->prefix[0] = 0;
    }
    return S3V_OK;
}

/* ---- INI files -------------------------------------------------------------------------------- */

/* Trims (s, n) in place-ish: returns the start and writes the new length. */
static const char *trim(const char *s, size_t *n)
{
    while (*n && (*s == ' ' || *s == '\t' || *s == '\r')) s++, (*n)--;
    while (*n && (s[*n - 1] == ' ' || s[*n - 1] == '\t' || s[*n - 1] == '\r')) (*n)--;
    return s;
}

/* Calls back for each "key = value" line of the INI text with the current section. Stops when the
 * callback returns nonzero, which is then returned. */
typedef int (*ini_fn)(void *arg, const char *sec, size_t sec_len, const char *key, size_t key_len,
                      const char *val, size_t val_len);

static int ini_walk(const char *text, size_t len, ini_fn fn, void *arg)
{
    const char *sec = "", *end = text + len, *p = text;
    size_t sec_len = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = nl ? nl : end;
        size_t n = (size_t)(line_end - p);
        int indented = n && (*p == ' ' || *p == '\t');
        const char *s = trim(p, &n);
        p = nl ? nl + 1 : end;
        if (!n || *s == '#' || *s == ';') continue;
        if (*s == '[') {
            if (s[n - 1] != ']') { /* malformed header: what follows belongs to no section */
                sec = NULL;
                sec_len = 0;
                continue;
            }
            size_t m = n - 2;
            sec = trim(s + 1, &m);
            sec_len = m;
            if (fn(arg, sec, sec_len, NULL, 0, NULL, 0)) return 1;
            continue;
        }
        if (indented || !sec) continue; /* nested settings ("s3 =\n  addressing_style = path") */
        const char *eq = memchr(s, '=', n);
        if (!eq) continue;
        size_t kl = (size_t)(eq - s), vl = n - kl - 1;
        const char *k = trim(s, &kl), *v = trim(eq + 1, &vl);
        int r = fn(arg, sec, sec_len, k, kl, v, vl);
        if (r) return r;
    }
    return 0;
}

typedef struct ini_query {
    const char *section, *key;
    char *out;
    size_t out_size;
    int found;
} ini_query;

static int ini_get_fn(void *arg, const char *sec, size_t sec_len, const char *key, size_t key_len,
                      const char *val, size_t val_len)
{
    ini_query *q = arg;
    if (!key) {
        if (!q->key && strlen(q->section) == sec_len && memcmp(sec, q->section, sec_len) == 0) q->found = 1;
        return q->found;
    }
    if (!q->key || strlen(q->section) != sec_len || memcmp(sec, q->section, sec_len) != 0) return 0;
    if (strlen(q->key) != key_len || memcmp(key, q->key, key_len) != 0) return 0;
    if (val_len >= q->out_size) return 0;
    memcpy(q->out, val, val_len);
    q->out[val_len] = 0;
    q->found = 1;
    return 1;
}

int s3_config_ini_get(const char *text, size_t len, const char *section, const char *key, char *out,
                      size_t out_size)
{
    if (!text || !section || !key || !out || !out_size) return 0;
    ini_query q = {section, key, out, out_size, 0};
    ini_walk(text, len, ini_get_fn, &q);
    return q.found;
}

int s3_config_ini_has_section(const char *text, size_t len, const char *section)
{
    if (!text || !section) return 0;
    ini_query q = {section, NULL, NULL, 0, 0};
    ini_walk(text, len, ini_get_fn, &q);
    return q.found;
}

/* Reads a whole (small) file. *text = NULL and S3V_OK when it does not exist. */
static s3v_status read_small_file(const char *path, char **text, size_t *len)
{
    *text = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT || errno == ENOTDIR) return S3V_OK;
        return s3v_errorf(S3V_ERR_CONFIG, "cannot read %s: %s", path, strerror(errno));
    }
    char *buf = malloc(S3_FILE_MAX + 1);
    if (!buf) {
        fclose(f);
        return s3v_errorf(S3V_ERR_NOMEM, "out of memory reading %s", path);
    }
    size_t n = fread(buf, 1, S3_FILE_MAX + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err || n > S3_FILE_MAX) {
        free(buf);
        return err ? s3v_errorf(S3V_ERR_CONFIG, "cannot read %s", path)
                   : s3v_errorf(S3V_ERR_CONFIG, "%s is larger than %d bytes", path, S3_FILE_MAX);
    }
    buf[n] = 0;
    *text = buf;
    *len = n;
    return S3V_OK;
}

static void wipe_free(char *text, size_t len)
{
    if (!text) return;
    explicit_bzero(text, len);
    free(text);
}

/* ---- endpoint --------------------------------------------------------------------------------- */

s3v_status s3_config_set_endpoint(s3_config *cfg, const char *url, int path_style)
{
    char host[S3_HOST_MAX], path[S3_PATH_MAX] = "";
    if (!url) {
        const char *suffix = strncmp(cfg->region, "cn-", 3) == 0 ? "amazonaws.com.cn" : "amazonaws.com";
        int dotted = strchr(cfg->bucket, '.') != NULL;
        cfg->path_style = path_style >= 0 ? path_style : dotted;
        cfg->custom_endpoint = 0;
        snprintf(cfg->scheme, sizeof cfg->scheme, "https");
        int n = cfg->path_style
                    ? snprintf(host, sizeof host, "s3.%s.%s", cfg->region, suffix)
                    : snprintf(host, sizeof host, "%s.s3.%s.%s", cfg->bucket, cfg->region, suffix);
        if (n < 0 || (size_t)n >= sizeof host) return s3v_errorf(S3V_ERR_CONFIG, "region name too long");
    } else {
        const char *rest;
        if (strncmp(url, "http://", 7) == 0) {
            snprintf(cfg->scheme, sizeof cfg->scheme, "http");
            rest = url + 7;
        } else if (strncmp(url, "https://", 8) == 0) {
            snprintf(cfg->scheme, sizeof cfg->scheme, "https");
            rest = url + 8;
        } else {
            return s3v_errorf(S3V_ERR_CONFIG, "endpoint URL must start with http:// or https://");
        }
        size_t hl = strcspn(rest, "/?#");
        if (hl == 0 || hl >= 200) return s3v_errorf(S3V_ERR_CONFIG, "endpoint URL has a bad host");
        for (size_t i = 0; i < hl; i++) {
            char c = rest[i];
            if (!(is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '.' || c == '-' || c == ':' ||
                  c == '[' || c == ']' || c == '_'))
                return s3v_errorf(S3V_ERR_CONFIG, "endpoint URL has a bad host");
        }
        if (rest[hl] == '?' || rest[hl] == '#')
            return s3v_errorf(S3V_ERR_CONFIG, "endpoint URL must not have a query or fragment");
        const char *p = rest + hl;
        size_t pl = strlen(p);
        while (pl && p[pl - 1] == '/') pl--;
        if (pl >= 256) return s3v_errorf(S3V_ERR_CONFIG, "endpoint URL path too long");
        for (size_t i = 0; i < pl; i++) {
            char c = p[i];
            if (!(is_lower_alnum(c) || (c >= 'A' && c <= 'Z') || c == '/' || c == '-' || c == '.' ||
                  c == '_' || c == '~'))
                return s3v_errorf(S3V_ERR_CONFIG, "endpoint URL path may hold only unreserved characters");
        }
        memcpy(path, p, pl);
        path[pl] = 0;
        /* drop a default port so Host matches what clients send */
        char hp[S3_HOST_MAX];
        memcpy(hp, rest, hl);
        hp[hl] = 0;
        size_t hpl = hl;
        const char *def = strcmp(cfg->scheme, "http") == 0 ? ":80" : ":443";
        if (hpl > strlen(def) && strcmp(hp + hpl - strlen(def), def) == 0 && hp[hpl - strlen(def) - 1] != ']')
            hp[hpl - strlen(def)] = 0;
        cfg->path_style = path_style >= 0 ? path_style : 1;
        cfg->custom_endpoint = 1;
        int n = cfg->path_style ? snprintf(host, sizeof host, "%s", hp)
                                : snprintf(host, sizeof host, "%s.%s", cfg->bucket, hp);
        if (n < 0 || (size_t)n >= sizeof host) return s3v_errorf(S3V_ERR_CONFIG, "endpoint host too long");
    }
    snprintf(cfg->host, sizeof cfg->host, "%s", host);
    snprintf(cfg->connect_host, sizeof cfg->connect_host, "%s", host);
    int n = cfg->path_style ? snprintf(cfg->base_path, sizeof cfg->base_path, "%s/%s", path, cfg->bucket)
                            : snprintf(cfg->base_path, sizeof cfg->base_path, "%s", path);
    if (n < 0 || (size_t)n >= sizeof cfg->base_path)
        return s3v_errorf(S3V_ERR_CONFIG, "endpoint path too long");
    return S3V_OK;
}

/* ---- tunables --------------------------------------------------------------------------------- */

static s3v_status env_uint(s3v_getenv_fn env, const char *name, unsigned lo, unsigned hi, unsigned *out)
{
    const char *v = env_get(env, name);
    if (!v) return S3V_OK;
    char *end;
    errno = 0;
    unsigned long x = strtoul(v, &end, 10);
    if (errno || end == v || *end || v[0] < '0' || v[0] > '9' || x < lo || x > hi)
        return s3v_errorf(S3V_ERR_CONFIG, "%s must be an integer from %u to %u", name, lo, hi);
    *out = (unsigned)x;
    return S3V_OK;
}

static s3v_status load_tunables(s3_config *cfg, s3v_getenv_fn env)
{
    cfg->max_concurrency =
        64; /* the default nprobe of a large index is 64: one round trip for all its ranges */
    cfg->max_attempts = 5;
    cfg->backoff_base_ms = 25;
    cfg->backoff_cap_ms = 2000;
    cfg->hedge = 1;
    cfg->hedge_min_ms = 50;
    cfg->upload_concurrency = 4;
    cfg->connect_timeout_ms = 3000;
    cfg->stall_timeout_ms = 15000;
    cfg->list_page = 1000;
    unsigned part_mb = 8, hedge = 1;
    S3V_TRY(env_uint(env, "S3VEC_S3_MAX_CONCURRENCY", 1, 256, &cfg->max_concurrency));
    S3V_TRY(env_uint(env, "S3VEC_S3_MAX_ATTEMPTS", 1, 20, &cfg->max_attempts));
    S3V_TRY(env_uint(env, "S3VEC_S3_BACKOFF_BASE_MS", 1, 10000, &cfg->backoff_base_ms));
    S3V_TRY(env_uint(env, "S3VEC_S3_BACKOFF_CAP_MS", 1, 60000, &cfg->backoff_cap_ms));
    S3V_TRY(env_uint(env, "S3VEC_S3_HEDGE", 0, 1, &hedge));
    S3V_TRY(env_uint(env, "S3VEC_S3_HEDGE_MIN_MS", 1, 60000, &cfg->hedge_min_ms));
    S3V_TRY(env_uint(env, "S3VEC_S3_PART_SIZE_MB", 5, 5120, &part_mb));
    S3V_TRY(env_uint(env, "S3VEC_S3_UPLOAD_CONCURRENCY", 1, 64, &cfg->upload_concurrency));
    S3V_TRY(env_uint(env, "S3VEC_S3_CONNECT_TIMEOUT_MS", 100, 60000, &cfg->connect_timeout_ms));
    S3V_TRY(env_uint(env, "S3VEC_S3_STALL_TIMEOUT_MS", 100, 600000, &cfg->stall_timeout_ms));
    S3V_TRY(env_uint(env, "S3VEC_S3_LIST_PAGE", 1, 1000, &cfg->list_page));
    if (cfg->backoff_cap_ms < cfg->backoff_base_ms) cfg->backoff_cap_ms = cfg->backoff_base_ms;
    cfg->hedge = (int)hedge;
    cfg->part_size = (uint64_t)part_mb << 20;
    return S3V_OK;
}

/* ---- credentials and region ------------------------------------------------------------------- */

typedef struct shared_files {
    char cred_path[1024], conf_path[1024];
    char *cred, *conf;
    size_t cred_len, conf_len;
    char profile[128];
    char conf_section[160]; /* "default" or "profile NAME" */
} shared_files;

static s3v_status files_open(shared_files *f, s3v_getenv_fn env)
{
    const char *home = env_get(env, "HOME");
    const char *cp = env_get(env, "AWS_SHARED_CREDENTIALS_FILE");
    const char *fp = env_get(env, "AWS_CONFIG_FILE");
    const char *prof = env_get(env, "AWS_PROFILE");
    if (!prof) prof = "default";
    S3V_TRY(copy_field(f->profile, sizeof f->profile, prof, "AWS_PROFILE"));
    if (strcmp(prof, "default") == 0)
        snprintf(f->conf_section, sizeof f->conf_section, "default");
    else
        snprintf(f->conf_section, sizeof f->conf_section, "profile %s", prof);
    if (cp)
        S3V_TRY(copy_field(f->cred_path, sizeof f->cred_path, cp, "AWS_SHARED_CREDENTIALS_FILE"));
    else if (home)
        snprintf(f->cred_path, sizeof f->cred_path, "%s/.aws/credentials", home);
    if (fp)
        S3V_TRY(copy_field(f->conf_path, sizeof f->conf_path, fp, "AWS_CONFIG_FILE"));
    else if (home)
        snprintf(f->conf_path, sizeof f->conf_path, "%s/.aws/config", home);
    if (f->cred_path[0]) S3V_TRY(read_small_file(f->cred_path, &f->cred, &f->cred_len));
    if (f->conf_path[0]) S3V_TRY(read_small_file(f->conf_path, &f->conf, &f->conf_len));
    return S3V_OK;
}

static void files_close(shared_files *f)
{
    wipe_free(f->cred, f->cred_len);
    wipe_free(f->conf, f->conf_len);
    f->cred = f->conf = NULL;
}

/* Reads a profile's keys from one file; returns 1 when both key id and secret are there. */
static int creds_from(s3_config *cfg, const char *text, size_t len, const char *section)
{
    if (!text) return 0;
    if (!s3_config_ini_get(text, len, section, "aws_access_key_id", cfg->access_key_id,
                           sizeof cfg->access_key_id))
        return 0;
    if (!s3_config_ini_get(text, len, section, "aws_secret_access_key", cfg->secret_access_key,
                           sizeof cfg->secret_access_key)) {
        cfg->access_key_id[0] = 0;
        return 0;
    }
    if (!s3_config_ini_get(text, len, section, "aws_session_token", cfg->session_token,
                           sizeof cfg->session_token))
        cfg->session_token[0] = 0;
    return 1;
}

static s3v_status load_credentials(s3_config *cfg, s3v_getenv_fn env, shared_files *f)
{
    const char *id = env_get(env, "AWS_ACCESS_KEY_ID"), *secret = env_get(env, "AWS_SECRET_ACCESS_KEY");
    if (id || secret) {
        if (!id || !secret)
            return s3v_errorf(S3V_ERR_CONFIG, "%s is set but %s is not",
                              id ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
                              id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        S3V_TRY(copy_field(cfg->access_key_id, sizeof cfg->access_key_id, id, "AWS_ACCESS_KEY_ID"));
        S3V_TRY(copy_field(cfg->secret_access_key, sizeof cfg->secret_access_key, secret,
                           "AWS_SECRET_ACCESS_KEY"));
        const char *tok = env_get(env, "AWS_SESSION_TOKEN");
        if (tok) S3V_TRY(copy_field(cfg->session_token, sizeof cfg->session_token, tok, "AWS_SESSION_TOKEN"));
        snprintf(cfg->cred_source, sizeof cfg->cred_source, "environment");
        return S3V_OK;
    }
    if (creds_from(cfg, f->cred, f->cred_len, f->profile)) {
        snprintf(cfg->cred_source, sizeof cfg->cred_source, "credentials file");
        return S3V_OK;
    }
    if (creds_from(cfg, f->conf, f->conf_len, f->conf_section)) {
        snprintf(cfg->cred_source, sizeof cfg->cred_source, "config file");
        return S3V_OK;
    }
    int explicit_profile = env_get(env, "AWS_PROFILE") != NULL;
    int known = (f->cred && s3_config_ini_has_section(f->cred, f->cred_len, f->profile)) ||
                (f->conf && s3_config_ini_has_section(f->conf, f->conf_len, f->conf_section));
    if (explicit_profile && !known)
        return s3v_errorf(S3V_ERR_CONFIG, "AWS profile '%s' not found in %s or %s", f->profile,
                          f->cred_path[0] ? f->cred_path : "(no credentials file)",
                          f->conf_path[0] ? f->conf_path : "(no config file)");
    return s3v_errorf(S3V_ERR_CONFIG,
                      "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give profile "
                      "'%s' aws_access_key_id and aws_secret_access_key in %s",
                      f->profile, f->cred_path[0] ? f->cred_path : "~/.aws/credentials");
}

static s3v_status check_token_chars(const char *what, const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return s3v_errorf(S3V_ERR_CONFIG, "%s contains a space or control character", what);
    return S3V_OK;
}

s3v_status s3_config_load(s3_config *cfg, const char *url, s3v_getenv_fn env)
{
    memset(cfg, 0, sizeof *cfg);
    shared_files f;
    memset(&f, 0, sizeof f);
    s3v_status st = S3V_OK;
    S3V_CHECK(s3_config_url_parse(url, cfg));
    S3V_CHECK(files_open(&f, env));
    S3V_CHECK(load_credentials(cfg, env, &f));
    S3V_CHECK(check_token_chars("the access key id", cfg->access_key_id));
    S3V_CHECK(check_token_chars("the secret access key", cfg->secret_access_key));
    S3V_CHECK(check_token_chars("the session token", cfg->session_token));

    const char *region = env_get(env, "AWS_REGION");
    if (!region) region = env_get(env, "AWS_DEFAULT_REGION");
    if (region) {
        S3V_CHECK(copy_field(cfg->region, sizeof cfg->region, region, "AWS_REGION"));
    } else if (!(f.conf && s3_config_ini_get(f.conf, f.conf_len, f.conf_section, "region", cfg->region,
                                             sizeof cfg->region))) {
        snprintf(cfg->region, sizeof cfg->region, "us-east-1");
    }
    for (const char *p = cfg->region; *p; p++)
        if (!is_lower_alnum(*p) && *p != '-') {
            st = s3v_errorf(S3V_ERR_CONFIG, "region '%s' is not a region name", cfg->region);
            goto fail;
        }
    if (!cfg->region[0]) {
        st = s3v_errorf(S3V_ERR_CONFIG, "empty region");
        goto fail;
    }

    char endpoint[512] = "";
    const char *ep = env_get(env, "AWS_ENDPOINT_URL_S3");
    if (!ep) ep = env_get(env, "AWS_ENDPOINT_URL");
    if (ep)
        S3V_CHECK(copy_field(endpoint, sizeof endpoint, ep, "AWS_ENDPOINT_URL"));
    else if (f.conf)
        s3_config_ini_get(f.conf, f.conf_len, f.conf_section, "endpoint_url", endpoint, sizeof endpoint);
    int style = -1;
    const char *addressing = env_get(env, "S3VEC_S3_ADDRESSING");
    if (addressing) {
        if (strcmp(addressing, "path") == 0)
            style = 1;
        else if (strcmp(addressing, "virtual") == 0)
            style = 0;
        else {
            st = s3v_errorf(S3V_ERR_CONFIG, "S3VEC_S3_ADDRESSING must be 'path' or 'virtual'");
            goto fail;
        }
    }
    S3V_CHECK(s3_config_set_endpoint(cfg, endpoint[0] ? endpoint : NULL, style));

    const char *ca = env_get(env, "AWS_CA_BUNDLE");
    if (ca) {
        S3V_CHECK(copy_field(cfg->ca_bundle, sizeof cfg->ca_bundle, ca, "AWS_CA_BUNDLE"));
        if (access(ca, R_OK) != 0) {
            st = s3v_errorf(S3V_ERR_CONFIG, "AWS_CA_BUNDLE names %s, which cannot be read", ca);
            goto fail;
        }
    } else if (access(S3_AWS_CA_AL2, R_OK) == 0) {
        snprintf(cfg->ca_bundle, sizeof cfg->ca_bundle, "%s", S3_AWS_CA_AL2);
    } else if (access(S3_AWS_CA_DEB, R_OK) == 0) {
        snprintf(cfg->ca_bundle, sizeof cfg->ca_bundle, "%s", S3_AWS_CA_DEB);
    }
    S3V_CHECK(load_tunables(cfg, env));
fail:
    files_close(&f);
    if (st != S3V_OK) s3_config_wipe(cfg);
    return st;
}

void s3_config_wipe(s3_config *cfg)
{
    if (!cfg) return;
    explicit_bzero(cfg->secret_access_key, sizeof cfg->secret_access_key);
    explicit_bzero(cfg->session_token, sizeof cfg->session_token);
}
