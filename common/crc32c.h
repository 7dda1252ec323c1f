/* common/crc32c.h: CRC-32C (Castagnoli), the checksum of every stored object and block.
 *
 * s3v_crc32c(0, p, n) computes a fresh checksum; pass a previous result as `crc` to continue.
 * Uses SSE4.2 (x86_64) or the ARMv8 CRC extension when s3v_crc32c_init() found it at start-up (three
 * interleaved lanes: about 3x one dependent chain, 20 GB/s in cache on the benchmark machine), else a
 * table-driven software version; all give identical results. Thread-safe after init. */
#ifndef S3V_CRC32C_H
#define S3V_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Detects hardware support once and builds the lane-joining tables; call at start-up, before any
 * other thread computes a checksum (kern_init() calls it). force_soft = 1 keeps the software path (for
 * tests and S3VEC_SIMD=scalar). Returns the name of the chosen path ("hardware" or "software"). */
const char *s3v_crc32c_init(int force_soft);
uint32_t s3v_crc32c(uint32_t crc, const uint8_t *data, size_t size);
/* The software path, always available (reference for tests). */
uint32_t s3v_crc32c_soft(uint32_t crc, const uint8_t *data, size_t size);

#endif
