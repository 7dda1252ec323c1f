/* engine/version.c */
#include "engine/version.h"
const char *s3v_version(void) { return S3VEC_VERSION_STRING; }
