/* common/le.h: little-endian readers and writers for bytes that cross the disk or the network.
 * Downloaded bytes are always read through these, never by casting a struct. No alignment needed. */
#ifndef S3V_LE_H
#define S3V_LE_H

#include <stdint.h>
#include <string.h>

static inline uint16_t le_get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t le_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t le_get_u64(const uint8_t *p)
{
    return (uint64_t)le_get_u32(p) | ((uint64_t)le_get_u32(p + 4) << 32);
}
static inline float le_get_f32(const uint8_t *p)
{
    uint32_t u = le_get_u32(p);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline void le_put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static inline void le_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline void le_put_u64(uint8_t *p, uint64_t v)
{
    le_put_u32(p, (uint32_t)v);
    le_put_u32(p + 4, (uint32_t)(v >> 32));
}
static inline void le_put_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    le_put_u32(p, u);
}

/* True when the host stores numbers little-endian, so arrays of floats can be used in place. */
static inline int le_host_is_le(void) { return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__; }

#endif
