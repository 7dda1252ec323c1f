/* tests/fuzz/replay_main.c: a main() for fuzz targets built without libFuzzer, so that a target's
 * corpus runs as a regression test under any compiler (CTest label "fuzz").
 *
 * Usage: replay_<name> PATH...   where each PATH is a file or a directory of files (dot files are
 * skipped; directory entries are replayed in name order). Each input is copied into a buffer of
 * exactly its size, so a sanitizer build reports any read past it. Exits 1 when no input was found
 * (a missing corpus is an error, not a pass) or a file cannot be read; a broken invariant traps. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tests/fuzz/fuzz.h"

#define REPLAY_MAX_INPUT (16u << 20) /* bytes; corpus files are small */

/* Optional in a target; NULL when the target does not define it. */
__attribute__((weak)) int LLVMFuzzerInitialize(int *argc, char ***argv);

static int replay_file(const char *path, size_t *count)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    uint8_t *buf = malloc(REPLAY_MAX_INPUT);
    size_t n = buf ? fread(buf, 1, REPLAY_MAX_INPUT, fp) : 0;
    int err = !buf || ferror(fp) || n == REPLAY_MAX_INPUT;
    fclose(fp);
    if (err) {
        fprintf(stderr, "replay: cannot read %s (or larger than %u bytes)\n", path, REPLAY_MAX_INPUT);
        free(buf);
        return -1;
    }
    uint8_t *exact = malloc(n ? n : 1);
    if (n) memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    (*count)++;
    return 0;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int replay_path(const char *path, size_t *count)
{
    struct stat sb;
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "replay: %s does not exist\n", path);
        return -1;
    }
    if (!S_ISDIR(sb.st_mode)) return replay_file(path, count);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(stderr, "replay: cannot open directory %s\n", path);
        return -1;
    }
    char **names = NULL;
    size_t len = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        if (len == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *names);
            if (!p) break;
            names = p;
        }
        names[len++] = strdup(de->d_name);
    }
    closedir(d);
    if (len) qsort(names, len, sizeof *names, by_name);
    int rc = 0;
    for (size_t i = 0; i < len; i++) {
        char full[4096];
        snprintf(full, sizeof full, "%s/%s", path, names[i]);
        if (rc == 0 && replay_file(full, count) != 0) rc = -1;
        free(names[i]);
    }
    free(names);
    return rc;
}

int main(int argc, char **argv)
{
    if (LLVMFuzzerInitialize) LLVMFuzzerInitialize(&argc, &argv);
    size_t count = 0;
    int rc = 0;
    for (int i = 1; i < argc; i++)
        if (replay_path(argv[i], &count) != 0) rc = 1;
    if (count == 0) {
        fprintf(stderr, "replay: no inputs found\n");
        return 1;
    }
    printf("replayed %zu inputs\n", count);
    return rc;
}
