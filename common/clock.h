/* common/clock.h: clocks. Monotonic nanoseconds for deadlines and timing; wall-clock for stamps.
 * A deadline is an absolute s3v_now_ns() value; S3V_NO_DEADLINE means none. Thread-safe. */
#ifndef S3V_CLOCK_H
#define S3V_CLOCK_H

#include <stdint.h>

#define S3V_NO_DEADLINE UINT64_MAX

uint64_t s3v_now_ns(void);  /* CLOCK_MONOTONIC */
uint64_t s3v_wall_ms(void); /* CLOCK_REALTIME, milliseconds since the Unix epoch */
/* CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID): what benchmarks time on a shared machine. */
uint64_t s3v_thread_cpu_ns(void);
/* Milliseconds left before deadline (0 when passed; INT64_MAX-ish for S3V_NO_DEADLINE). */
int64_t s3v_deadline_left_ms(uint64_t deadline_ns);
/* A deadline `ms` milliseconds from now. */
uint64_t s3v_deadline_in_ms(uint64_t ms);
/* Sleeps the calling thread for `us` microseconds (resumed after a signal until the time has passed). */
void s3v_sleep_us(uint64_t us);

#endif
