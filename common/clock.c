/* common/clock.c */
#include "common/clock.h"

#include <time.h>

uint64_t s3v_thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t s3v_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t s3v_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000ull + (uint64_t)ts.tv_nsec / 1000000ull;
}

int64_t s3v_deadline_left_ms(uint64_t deadline_ns)
{
    if (deadline_ns == S3V_NO_DEADLINE) return INT64_MAX / 2;
    uint64_t now = s3v_now_ns();
    return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000ull);
}

uint64_t s3v_deadline_in_ms(uint64_t ms) { return s3v_now_ns() + ms * 1000000ull; }

void s3v_sleep_us(uint64_t us)
{
    struct timespec ts = {(time_t)(us / 1000000u), (long)(us % 1000000u) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}
