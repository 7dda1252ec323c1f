/* tests/unit/test_s3_config.c: S3 URL parsing, credential/region/endpoint precedence, shared config
 * files, addressing, CA bundle and tunables, through a fake environment (no real environment read). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/clock.h"
#include "s3/s3_config.h"
#include "s3/s3_storage.h"
#include "tests/unit/testutil.h"

/* ---- fake environment ------------------------------------------------------------------------- */

#define ENV_MAX 32
static const char *env_names[ENV_MAX], *env_values[ENV_MAX];
static size_t env_n;

static void env_clear(void) { env_n = 0; }
static void env_set(const char *name, const char *value)
{
    env_names[env_n] = name;
    env_values[env_n++] = value;
}
static const char *fake_env(const char *name)
{
    for (size_t i = 0; i < env_n; i++)
        if (strcmp(env_names[i], name) == 0) return env_values[i];
    return NULL;
}

static char tmpdir[256];

static void write_file(const char *name, const char *text, char *path_out, size_t cap)
{
    snprintf(path_out, cap, "%s/%s", tmpdir, name);
    FILE *f = fopen(path_out, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static const char *SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";

/* ---- tests ------------------------------------------------------------------------------------ */

static void test_url(void)
{
    s3_config c;
    memset(&c, 0, sizeof c);
    CHECK(s3_config_url_parse("s3://my-bucket", &c) == S3V_OK && !strcmp(c.bucket, "my-bucket") &&
              !c.prefix[0],
          "bucket only");
    CHECK(s3_config_url_parse("s3://my-bucket/", &c) == S3V_OK && !c.prefix[0], "bucket with slash");
    CHECK(s3_config_url_parse("s3://b.example-1/idx/v1", &c) == S3V_OK && !strcmp(c.bucket, "b.example-1") &&
              !strcmp(c.prefix, "idx/v1/"),
          "prefix gets a trailing slash: %s", c.prefix);
    CHECK(s3_config_url_parse("s3://abc/idx//", &c) == S3V_OK && !strcmp(c.prefix, "idx/"),
          "trailing slashes: %s", c.prefix);
    const char *bad[] = {"s3:/b",
                         "http://bucket",
                         "s3://",
                         "s3://ab",
                         "s3://Bucket",
                         "s3://-bucket",
                         "s3://bucket-",
                         "s3://bu_cket",
                         "s3://a..b",
                         "s3://bucket/a/../b",
                         "s3://bucket/./a",
                         "s3://bucket//a",
                         "s3://bucket/a//b",
                         "s3://bucket/a\x01",
                         "s3://aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(s3_config_url_parse(bad[i], &c) == S3V_ERR_INVALID, "rejects %s", bad[i]);
    char longp[2100] = "s3://bucket/";
    memset(longp + 12, 'a', 2000);
    longp[2012] = 0;
    CHECK(s3_config_url_parse(longp, &c) == S3V_ERR_INVALID, "rejects an over-long prefix");
}

static void test_env_credentials(void)
{
    s3_config c;
    env_clear();
    env_set("HOME", "/nonexistent");
    env_set("AWS_ACCESS_KEY_ID", "AKIDENV");
    env_set("AWS_SECRET_ACCESS_KEY", SECRET);
    env_set("AWS_SESSION_TOKEN", "TOKENENV");
    REQUIRE(s3_config_load(&c, "s3://bucket/p", fake_env) == S3V_OK, "load: %s", s3v_errmsg(S3V_ERR_CONFIG));
    CHECK(!strcmp(c.access_key_id, "AKIDENV") && !strcmp(c.secret_access_key, SECRET) &&
              !strcmp(c.session_token, "TOKENENV") && !strcmp(c.cred_source, "environment"),
          "env credentials");
    CHECK(!strcmp(c.region, "us-east-1"), "default region %s", c.region);
    CHECK(!strcmp(c.scheme, "https") && !strcmp(c.host, "bucket.s3.us-east-1.amazonaws.com") &&
              !c.base_path[0] && !c.path_style,
          "AWS virtual host: %s %s", c.host, c.base_path);
    CHECK(c.max_concurrency == 64 && c.max_attempts == 5 && c.hedge == 1 && c.part_size == 8u << 20 &&
              c.upload_concurrency == 4,
          "default tunables");
    s3_config_wipe(&c);
    CHECK(!c.secret_access_key[0] && !c.session_token[0], "wipe clears secrets");

    /* only one of the pair: a clear error naming the missing variable, never the secret */
    env_clear();
    env_set("HOME", "/nonexistent");
    env_set("AWS_SECRET_ACCESS_KEY", SECRET);
    s3v_status st = s3_config_load(&c, "s3://bucket", fake_env);
    CHECK(st == S3V_ERR_CONFIG && strstr(s3v_errmsg(st), "AWS_ACCESS_KEY_ID"), "half pair: %s",
          s3v_errmsg(st));
    CHECK(!strstr(s3v_errmsg(st), SECRET), "secret not in message");
    CHECK(!c.secret_access_key[0], "no secret left in cfg after failure");

    env_clear();
    env_set("HOME", "/nonexistent");
    st = s3_config_load(&c, "s3://bucket", fake_env);
    CHECK(st == S3V_ERR_CONFIG && strstr(s3v_errmsg(st), "no AWS credentials"), "none: %s", s3v_errmsg(st));
}

static void test_files(void)
{
    char cred[512], conf[512];
    write_file(
        "credentials",
        "# comment\n[default]\naws_access_key_id = AKIDDEFAULT\naws_secret_access_key=SECRETDEFAULT\n\n"
        "[dev]\naws_access_key_id   =   AKIDDEV  \n  aws_access_key_id = NESTED\naws_secret_access_key = "
        "SECRETDEV\naws_session_token = "
        "TOKDEV\n"
        "; trailing comment\n[broken\naws_access_key_id = NOPE\n",
        cred, sizeof cred);
    write_file("config",
               "[default]\nregion = eu-west-1\n[profile dev]\nregion=ap-southeast-2\ns3 =\n  "
               "addressing_style = path\n"
               "[profile cfgonly]\naws_access_key_id = AKIDCFG\naws_secret_access_key = SECRETCFG\nregion = "
               "us-west-2\n"
               "endpoint_url = http://127.0.0.1:9000\n",
               conf, sizeof conf);
    s3_config c;

    env_clear();
    env_set("AWS_SHARED_CREDENTIALS_FILE", cred);
    env_set("AWS_CONFIG_FILE", conf);
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "default profile: %s",
            s3v_errmsg(S3V_ERR_CONFIG));
    CHECK(!strcmp(c.access_key_id, "AKIDDEFAULT") && !strcmp(c.secret_access_key, "SECRETDEFAULT") &&
              !c.session_token[0] && !strcmp(c.cred_source, "credentials file"),
          "default from credentials file: %s", c.access_key_id);
    CHECK(!strcmp(c.region, "eu-west-1"), "region from config [default]: %s", c.region);

    env_set("AWS_PROFILE", "dev");
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "dev profile");
    CHECK(!strcmp(c.access_key_id, "AKIDDEV") && !strcmp(c.secret_access_key, "SECRETDEV") &&
              !strcmp(c.session_token, "TOKDEV"),
          "dev profile values trimmed: '%s'", c.access_key_id);
    CHECK(!strcmp(c.region, "ap-southeast-2"), "region from [profile dev]: %s", c.region);
    CHECK(!strcmp(c.host, "bucket.s3.ap-southeast-2.amazonaws.com"), "host follows region: %s", c.host);

    env_set("AWS_REGION", "sa-east-1"); /* env beats config file */
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "dev + AWS_REGION");
    CHECK(!strcmp(c.region, "sa-east-1"), "AWS_REGION wins: %s", c.region);

    env_clear();
    env_set("AWS_SHARED_CREDENTIALS_FILE", cred);
    env_set("AWS_CONFIG_FILE", conf);
    env_set("AWS_DEFAULT_REGION", "ca-central-1");
    env_set("AWS_PROFILE", "cfgonly");
    REQUIRE(s3_config_load(&c, "s3://bucket/x", fake_env) == S3V_OK, "cfgonly");
    CHECK(!strcmp(c.access_key_id, "AKIDCFG") && !strcmp(c.cred_source, "config file"),
          "credentials from config");
    CHECK(!strcmp(c.region, "ca-central-1"), "AWS_DEFAULT_REGION beats the profile: %s", c.region);
    CHECK(c.custom_endpoint && c.path_style && !strcmp(c.scheme, "http") &&
              !strcmp(c.host, "127.0.0.1:9000") && !strcmp(c.base_path, "/bucket"),
          "endpoint_url from the profile, path style: %s %s", c.host, c.base_path);

    /* environment credentials beat the files */
    env_set("AWS_ACCESS_KEY_ID", "AKIDENV");
    env_set("AWS_SECRET_ACCESS_KEY", "SECRETENV");
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "env over files");
    CHECK(!strcmp(c.access_key_id, "AKIDENV") && !strcmp(c.cred_source, "environment"), "env wins");

    env_clear();
    env_set("AWS_SHARED_CREDENTIALS_FILE", cred);
    env_set("AWS_CONFIG_FILE", conf);
    env_set("AWS_PROFILE", "missing");
    s3v_status st = s3_config_load(&c, "s3://bucket", fake_env);
    CHECK(st == S3V_ERR_CONFIG && strstr(s3v_errmsg(st), "'missing' not found"), "missing profile: %s",
          s3v_errmsg(st));
    env_set("AWS_PROFILE", "broken"); /* a section header without ']' is ignored */
    st = s3_config_load(&c, "s3://bucket", fake_env);
    CHECK(st == S3V_ERR_CONFIG, "unterminated section is not a profile");
    CHECK(!strstr(s3v_errmsg(st), "SECRET"), "no secret in message: %s", s3v_errmsg(st));

    /* $HOME/.aws/ when no file variables are set */
    char home[512], dotaws[600], path[700];
    snprintf(home, sizeof home, "%s/home", tmpdir);
    snprintf(dotaws, sizeof dotaws, "%s/.aws", home);
    CHECK(mkdir(home, 0700) == 0 && mkdir(dotaws, 0700) == 0, "mkdir");
    snprintf(path, sizeof path, "%s/credentials", dotaws);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs("[default]\naws_access_key_id=AKIDHOME\naws_secret_access_key=SECRETHOME",
              f); /* no final newline */
        fclose(f);
    }
    env_clear();
    env_set("HOME", home);
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "home credentials");
    CHECK(!strcmp(c.access_key_id, "AKIDHOME") && !strcmp(c.secret_access_key, "SECRETHOME"),
          "HOME/.aws/credentials");
    unlink(path);
    rmdir(dotaws);
    rmdir(home);
    unlink(cred);
    unlink(conf);
}

static void test_ini_hostile(void)
{
    char out[16];
    const char *t1 = "[a]\nk=v";
    CHECK(s3_config_ini_get(t1, strlen(t1), "a", "k", out, sizeof out) && !strcmp(out, "v"),
          "no newline at end");
    /* length bound: the text continues past len but must not be read */
    const char *t2 = "[a]\nk=v\n[b]\nk=w";
    CHECK(!s3_config_ini_get(t2, 8, "b", "k", out, sizeof out), "does not read past len");
    CHECK(s3_config_ini_get(t2, 8, "a", "k", out, sizeof out) && !strcmp(out, "v"), "reads within len");
    const char *t3 = "[a]\nk=0123456789abcdefXYZ\n";
    CHECK(!s3_config_ini_get(t3, strlen(t3), "a", "k", out, sizeof out),
          "value too long for out is not found");
    const char *t4 = "[]\n=\n[a\nk\n[a]]\n=v\n  k=indented\n";
    CHECK(!s3_config_ini_get(t4, strlen(t4), "a", "k", out, sizeof out), "junk lines ignored");
    CHECK(s3_config_ini_has_section(t4, strlen(t4), "a]"), "odd section names are taken literally");
    const char *t5 = "[a]\r\nk = v \r\n";
    CHECK(s3_config_ini_get(t5, strlen(t5), "a", "k", out, sizeof out) && !strcmp(out, "v"), "CRLF");
    CHECK(!s3_config_ini_get("", 0, "a", "k", out, sizeof out), "empty text");
    char big[4096];
    memset(big, '[', sizeof big);
    CHECK(!s3_config_ini_get(big, sizeof big, "a", "k", out, sizeof out), "no NUL, no newline: bounded");
}

static void test_endpoints(void)
{
    s3_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.bucket, sizeof c.bucket, "my.dotted.bucket");
    snprintf(c.region, sizeof c.region, "eu-central-1");
    REQUIRE(s3_config_set_endpoint(&c, NULL, -1) == S3V_OK, "aws dotted");
    CHECK(c.path_style && !strcmp(c.host, "s3.eu-central-1.amazonaws.com") &&
              !strcmp(c.base_path, "/my.dotted.bucket"),
          "dotted bucket uses path style on AWS: %s %s", c.host, c.base_path);
    snprintf(c.bucket, sizeof c.bucket, "plain");
    snprintf(c.region, sizeof c.region, "cn-north-1");
    REQUIRE(s3_config_set_endpoint(&c, NULL, -1) == S3V_OK, "aws cn");
    CHECK(!strcmp(c.host, "plain.s3.cn-north-1.amazonaws.com.cn"), "China partition: %s", c.host);
    REQUIRE(s3_config_set_endpoint(&c, "http://127.0.0.1:5000/", -1) == S3V_OK, "custom");
    CHECK(c.path_style && !strcmp(c.host, "127.0.0.1:5000") && !strcmp(c.base_path, "/plain") &&
              !strcmp(c.scheme, "http"),
          "custom endpoint path style: %s %s", c.host, c.base_path);
    REQUIRE(s3_config_set_endpoint(&c, "https://minio.local:443/s3/", -1) == S3V_OK, "custom with path");
    CHECK(!strcmp(c.host, "minio.local") && !strcmp(c.base_path, "/s3/plain") && !strcmp(c.scheme, "https"),
          "default port dropped, endpoint path kept: %s %s", c.host, c.base_path);
    REQUIRE(s3_config_set_endpoint(&c, "http://storage.example:80", 0) == S3V_OK, "custom virtual");
    CHECK(!c.path_style && !strcmp(c.host, "plain.storage.example") && !c.base_path[0],
          "virtual on custom: %s", c.host);
    const char *bad[] = {"ftp://x",        "http://",      "http://a b",
                         "http://h/p?q=1", "http://h/%41", "127.0.0.1:5000"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK(s3_config_set_endpoint(&c, bad[i], -1) == S3V_ERR_CONFIG, "rejects endpoint %s", bad[i]);

    /* precedence of the variables */
    env_clear();
    env_set("HOME", "/nonexistent");
    env_set("AWS_ACCESS_KEY_ID", "A");
    env_set("AWS_SECRET_ACCESS_KEY", "S");
    env_set("AWS_ENDPOINT_URL", "http://general:1");
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "general endpoint");
    CHECK(!strcmp(c.host, "general:1"), "AWS_ENDPOINT_URL: %s", c.host);
    env_set("AWS_ENDPOINT_URL_S3", "http://s3specific:2");
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "s3 endpoint");
    CHECK(!strcmp(c.host, "s3specific:2"), "AWS_ENDPOINT_URL_S3 wins: %s", c.host);
    env_set("S3VEC_S3_ADDRESSING", "virtual");
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "virtual");
    CHECK(!c.path_style && !strcmp(c.host, "bucket.s3specific:2"), "addressing override: %s", c.host);
    env_n--;
    env_set("S3VEC_S3_ADDRESSING", "sideways");
    CHECK(s3_config_load(&c, "s3://bucket", fake_env) == S3V_ERR_CONFIG, "bad addressing value");
}

static void test_ca_and_tunables(void)
{
    s3_config c;
    env_clear();
    env_set("HOME", "/nonexistent");
    env_set("AWS_ACCESS_KEY_ID", "A");
    env_set("AWS_SECRET_ACCESS_KEY", "S");
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "load");
    if (access(S3_AWS_CA_AL2, R_OK) == 0)
        CHECK(!strcmp(c.ca_bundle, S3_AWS_CA_AL2), "Amazon Linux bundle preferred");
    else if (access(S3_AWS_CA_DEB, R_OK) == 0)
        CHECK(!strcmp(c.ca_bundle, S3_AWS_CA_DEB), "Debian bundle found: %s", c.ca_bundle);
    char ca[512];
    write_file("ca.pem", "not really a certificate\n", ca, sizeof ca);
    env_set("AWS_CA_BUNDLE", ca);
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "with AWS_CA_BUNDLE");
    CHECK(!strcmp(c.ca_bundle, ca), "AWS_CA_BUNDLE overrides: %s", c.ca_bundle);
    env_n--;
    env_set("AWS_CA_BUNDLE", "/nonexistent/ca.pem");
    CHECK(s3_config_load(&c, "s3://bucket", fake_env) == S3V_ERR_CONFIG, "unreadable CA bundle is an error");
    env_n--;
    unlink(ca);

    env_set("S3VEC_S3_MAX_CONCURRENCY", "8");
    env_set("S3VEC_S3_PART_SIZE_MB", "16");
    env_set("S3VEC_S3_HEDGE", "0");
    env_set("S3VEC_S3_BACKOFF_BASE_MS", "100");
    env_set("S3VEC_S3_BACKOFF_CAP_MS", "50"); /* below base: raised to base */
    REQUIRE(s3_config_load(&c, "s3://bucket", fake_env) == S3V_OK, "tunables");
    CHECK(c.max_concurrency == 8 && c.part_size == 16u << 20 && c.hedge == 0 && c.backoff_base_ms == 100 &&
              c.backoff_cap_ms == 100,
          "tunables applied");
    const char *bad[] = {"0", "257", "-1", "8x", "", " 8", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        env_clear();
        env_set("HOME", "/nonexistent");
        env_set("AWS_ACCESS_KEY_ID", "A");
        env_set("AWS_SECRET_ACCESS_KEY", "S");
        env_set("S3VEC_S3_MAX_CONCURRENCY", bad[i]);
        s3v_status st = s3_config_load(&c, "s3://bucket", fake_env);
        /* "" counts as unset, like the AWS tools */
        CHECK(bad[i][0] ? st == S3V_ERR_CONFIG : st == S3V_OK, "S3VEC_S3_MAX_CONCURRENCY='%s' -> %s", bad[i],
              s3v_status_name(st));
    }
    env_clear();
    env_set("HOME", "/nonexistent");
    env_set("AWS_ACCESS_KEY_ID", "A");
    env_set("AWS_SECRET_ACCESS_KEY", "S");
    env_set("S3VEC_S3_PART_SIZE_MB", "4"); /* below S3's 5 MiB minimum */
    CHECK(s3_config_load(&c, "s3://bucket", fake_env) == S3V_ERR_CONFIG, "part size below 5 MiB rejected");
    env_clear();
    env_set("HOME", "/nonexistent");
    env_set("AWS_ACCESS_KEY_ID", "A");
    env_set("AWS_SECRET_ACCESS_KEY", "S e");
    CHECK(s3_config_load(&c, "s3://bucket", fake_env) == S3V_ERR_CONFIG, "secret with a space rejected");
    CHECK(!strstr(s3v_errmsg(S3V_ERR_CONFIG), "S e"), "and not echoed");
    env_clear();
    env_set("HOME", "/nonexistent");
    env_set("AWS_ACCESS_KEY_ID", "A");
    env_set("AWS_SECRET_ACCESS_KEY", "S");
    env_set("AWS_REGION", "us east");
    CHECK(s3_config_load(&c, "s3://bucket", fake_env) == S3V_ERR_CONFIG, "bad region rejected");
}

static void test_open_any(void)
{
    s3v_storage *st = NULL;
    env_clear();
    env_set("HOME", "/nonexistent");
    CHECK(s3_storage_open("s3://bucket/x", fake_env, &st) == S3V_ERR_CONFIG && !st,
          "no credentials: no handle");
    env_set("AWS_ACCESS_KEY_ID", "A");
    env_set("AWS_SECRET_ACCESS_KEY", SECRET);
    REQUIRE(s3_storage_open_any("s3://bucket/x", 0, fake_env, &st) == S3V_OK && st, "open s3");
    CHECK(s3_storage_is_s3(st) && !strcmp(st->ops->name, "s3"), "is s3");
    char where[256];
    s3v_storage_describe(st, "idx/manifest", where, sizeof where);
    CHECK(!strcmp(where, "s3://bucket/x/idx/manifest"), "describe: %s", where);
    s3_stats stats;
    CHECK(s3_storage_stats(st, &stats) == S3V_OK && stats.requests == 0, "fresh stats");
    s3v_buf b;
    s3v_buf_init(&b, 16);
    CHECK(s3v_storage_get(st, "../etc/passwd", S3V_NO_DEADLINE, &b, NULL) == S3V_ERR_INVALID,
          "keys are validated before any request");
    s3v_storage_close(st);
    st = NULL;
    REQUIRE(s3_storage_open_any(tmpdir, 0, fake_env, &st) == S3V_OK && st, "open local");
    CHECK(!s3_storage_is_s3(st) && s3_storage_stats(st, &stats) == S3V_ERR_INVALID, "local is not s3");
    s3v_storage_close(st);
    CHECK(!s3_storage_is_s3(NULL), "NULL is not s3");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/s3v-test-config-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_url();
    test_env_credentials();
    test_files();
    test_ini_hostile();
    test_endpoints();
    test_ca_and_tunables();
    test_open_any();
    rmdir(tmpdir);
    return TEST_SUMMARY();
}
