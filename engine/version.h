/* engine/version.h: the s3vec version string. */
#ifndef S3V_VERSION_H
#define S3V_VERSION_H
#define S3VEC_VERSION_STRING "0.1.0"
const char *s3v_version(void);
#endif
