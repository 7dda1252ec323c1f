/* tests/unit/testutil.h: the few macros every unit test program shares.
 *
 * CHECK(cond, fmt, ...) records a pass or a failure (with file:line and the message) and goes on;
 * REQUIRE(cond, ...) also returns from main's test function on failure. TEST_SUMMARY() prints the
 * closing line CI reads ("N passed, N failed") and returns the exit code. Single-threaded. */
#ifndef S3V_TESTUTIL_H
#define S3V_TESTUTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int tu_passed, tu_failed;

#define CHECK(cond, ...)                                                    \
    do {                                                                    \
        if (cond) {                                                         \
            tu_passed++;                                                    \
        } else {                                                            \
            tu_failed++;                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                   \
            fputc('\n', stderr);                                            \
        }                                                                   \
    } while (0)

#define REQUIRE(cond, ...)          \
    do {                            \
        int tu_ok_ = (cond);        \
        CHECK(tu_ok_, __VA_ARGS__); \
        if (!tu_ok_) return;        \
    } while (0)

#define TEST_SUMMARY() (printf("%d passed, %d failed\n", tu_passed, tu_failed), tu_failed ? 1 : 0)

/* Directory of the shared data (../shared/data beside the repository), or NULL. */
static inline const char *tu_shared_data_dir(void)
{
    static char path[4096];
    const char *s = getenv("S3VEC_SHARED_DIR");
    if (!s) return NULL;
    snprintf(path, sizeof path, "%s/data", s);
    return path;
}

/* Brute-force top k: inserts candidate `id` at distance d into best[0..*n) / ids[0..*n), kept sorted by
 * distance (ties: the earlier candidate first), at most k long. */
static inline void tu_topk_insert(double *best, int *ids, int *n, int k, double d, int id)
{
    int pos = *n < k ? (*n)++ : k;
    if (pos == k && d >= best[k - 1]) return;
    if (pos == k) pos = k - 1;
    while (pos > 0 && best[pos - 1] > d) {
        best[pos] = best[pos - 1];
        ids[pos] = ids[pos - 1];
        pos--;
    }
    best[pos] = d;
    ids[pos] = id;
}

/* Removes a directory tree (a test's temporary folder); symbolic links are removed, never followed. */
static inline void tu_rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[4096];
            if (snprintf(p, sizeof p, "%s/%s", path, e->d_name) >= (int)sizeof p) continue;
            struct stat sb;
            if (lstat(p, &sb) == 0 && S_ISDIR(sb.st_mode))
                tu_rm_rf(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

#endif
