/* s3/s3_config.h: where an S3 backend connects and with which credentials. Internal to s3/.
 *
 * Everything comes from the s3v_getenv_fn the caller passes (bootstrap/ and cli/ pass getenv; tests
 * pass a fake) and from the files it names; this module never calls getenv itself.
 *
 * Precedence, as the AWS CLI and SDKs:
 *   credentials  AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN), what Lambda sets;
 *                else profile AWS_PROFILE (default "default") in the shared credentials file
 *                (AWS_SHARED_CREDENTIALS_FILE, default $HOME/.aws/credentials);
 *                else the same profile in the config file (AWS_CONFIG_FILE, default $HOME/.aws/config,
 *                sections "[default]" / "[profile NAME]"). None found: S3V_ERR_CONFIG.
 *   region       AWS_REGION, AWS_DEFAULT_REGION, the profile's "region" in the config file, us-east-1.
 *   endpoint     AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's "endpoint_url", else AWS
 *                (https://<bucket>.s3.<region>.amazonaws.com, virtual-host style; buckets with dots use
 *                path style on s3.<region>.amazonaws.com). A custom endpoint uses path style
 *                (http://host:port/<bucket>/<key>) unless S3VEC_S3_ADDRESSING=virtual.
 *   CA bundle    AWS_CA_BUNDLE; else the first of /etc/pki/tls/certs/ca-bundle.crt (Amazon Linux)
 *                and /etc/ssl/certs/ca-certificates.crt (Debian) that exists; else libcurl's default.
 *   tunables     S3VEC_S3_MAX_CONCURRENCY (1..256, default 64), S3VEC_S3_MAX_ATTEMPTS (1..20, 5),
 *                S3VEC_S3_BACKOFF_BASE_MS (1..10000, 25), S3VEC_S3_BACKOFF_CAP_MS (1..60000, 2000),
 *                S3VEC_S3_HEDGE (0|1, 1), S3VEC_S3_HEDGE_MIN_MS (1..60000, 50),
 *                S3VEC_S3_PART_SIZE_MB (5..5120, 8), S3VEC_S3_UPLOAD_CONCURRENCY (1..64, 4),
 *                S3VEC_S3_CONNECT_TIMEOUT_MS (100..60000, 3000), S3VEC_S3_STALL_TIMEOUT_MS (100..600000,
 *                15000: a transfer that receives nothing for this long is retried),
 *                S3VEC_S3_LIST_PAGE (1..1000, 1000: keys asked per ListObjectsV2 page).
 *                A malformed value is S3V_ERR_CONFIG (never silently ignored).
 *
 * Secrets live only in this struct (and in the signer while it runs); s3_config_wipe() clears them.
 * Messages name variables and files, never their secret values. Not thread-safe (plain data). */
#ifndef S3_CONFIG_H
#define S3_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"
#include "s3/s3_storage.h"

#define S3_BUCKET_MAX 64   /* 63 characters + NUL */
#define S3_PREFIX_MAX 1024 /* root prefix, with its trailing '/' */
#define S3_HOST_MAX   320
#define S3_PATH_MAX   512
#define S3_KEY_ID_MAX 128
#define S3_SECRET_MAX 128
#define S3_TOKEN_MAX  4096
#define S3_REGION_MAX 64
#define S3_FILE_MAX   (1024 * 1024) /* cap on a shared config/credentials file */
#define S3_AWS_CA_AL2 "/etc/pki/tls/certs/ca-bundle.crt"
#define S3_AWS_CA_DEB "/etc/ssl/certs/ca-certificates.crt"

typedef struct s3_config {
    /* where */
    char bucket[S3_BUCKET_MAX];
    char prefix[S3_PREFIX_MAX];     /* "" or "a/b/" (always ends with '/' when not empty) */
    char scheme[8];                 /* "https" or "http" */
    char host[S3_HOST_MAX];         /* value of the Host header, with ":port" when not the default */
    char connect_host[S3_HOST_MAX]; /* host[:port] to put in the URL (same as host) */
    char base_path[S3_PATH_MAX];    /* raw path before "/<key>": "" (virtual) or "/<bucket>" (path) */
    int path_style;
    int custom_endpoint; /* 1 when an endpoint URL was configured */
    char region[S3_REGION_MAX];
    char ca_bundle[1024]; /* "" = libcurl's default */
    /* who */
    char access_key_id[S3_KEY_ID_MAX];
    char secret_access_key[S3_SECRET_MAX];
    char session_token[S3_TOKEN_MAX];
    char cred_source[64]; /* "environment", "credentials file", "config file" (for messages) */
    /* how */
    unsigned max_concurrency;
    unsigned max_attempts;
    unsigned backoff_base_ms;
    unsigned backoff_cap_ms;
    int hedge;
    unsigned hedge_min_ms;
    uint64_t part_size;
    unsigned upload_concurrency;
    unsigned connect_timeout_ms;
    unsigned stall_timeout_ms;
    unsigned list_page;
} s3_config;

/* Parses "s3://bucket" or "s3://bucket/prefix[/]" into cfg->bucket and cfg->prefix. The bucket must
 * follow S3's naming rules (3-63 of a-z 0-9 . -, starting and ending with a letter or digit); the
 * prefix must be a valid storage key (s3v_storage_key_check) once its trailing '/' is removed.
 * S3V_ERR_INVALID otherwise. Other fields are untouched. */
S3V_MUST_USE s3v_status s3_config_url_parse(const char *url, s3_config *cfg);

/* Fills cfg completely: the URL, then credentials, region, endpoint, CA bundle and tunables as
 * described above. S3V_ERR_INVALID for a bad URL, S3V_ERR_CONFIG for missing or malformed
 * configuration. cfg is zeroed first; on failure it holds no secret. */
S3V_MUST_USE s3v_status s3_config_load(s3_config *cfg, const char *url, s3v_getenv_fn env);

/* Sets the endpoint fields from an endpoint URL ("http://127.0.0.1:5000", "https://minio.local/s3")
 * or, for url = NULL, the AWS endpoint of cfg->region; path_style: 1 path, 0 virtual host, -1 the
 * default (path for a custom endpoint, virtual for AWS unless the bucket has a dot). Needs
 * cfg->bucket and cfg->region. S3V_ERR_CONFIG for a malformed URL. */
S3V_MUST_USE s3v_status s3_config_set_endpoint(s3_config *cfg, const char *url, int path_style);

/* Looks up key in [section] of an INI text (ptr, len): "key = value" lines, '#' and ';' comments,
 * indented lines ignored. Writes the trimmed value to out and returns 1, or returns 0 when absent
 * or when the value does not fit out_size. Never reads past len. */
int s3_config_ini_get(const char *text, size_t len, const char *section, const char *key, char *out,
                      size_t out_size);

/* 1 when [section] appears in the INI text. */
int s3_config_ini_has_section(const char *text, size_t len, const char *section);

/* Clears the secrets (secret key, session token). */
void s3_config_wipe(s3_config *cfg);

#endif
