/* tests/fuzz/fuzz.h: the libFuzzer entry points a fuzz_<name>.c target defines.
 *
 * LLVMFuzzerTestOneInput gets (data, size) and must not read outside it; it returns 0. A target
 * that finds a broken invariant calls FUZZ_ASSERT, which traps so that libFuzzer (or the replay
 * driver under CTest) reports the input. LLVMFuzzerInitialize is optional (one-time set-up). The same
 * file builds against libFuzzer (clang, -DS3VEC_FUZZ=ON) and against replay_main.c (any compiler). */
#ifndef S3V_FUZZ_H
#define S3V_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define FUZZ_ASSERT(cond)                                                                     \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            __builtin_trap();                                                                 \
        }                                                                                     \
    } while (0)

#endif
