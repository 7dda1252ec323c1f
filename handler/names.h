/* handler/names.h: vector bucket and index names, their ARNs, and where they live in storage.
 *
 * A deployment is given one storage root (an S3 bucket/prefix or a folder). The vector bucket
 * `vb` is the key prefix "vb/" under it and the index `idx` of that bucket is the engine prefix
 * "vb/idx" (objects "vb/idx/manifest", "vb/idx/<gen>/..."). Names are checked here before any storage
 * access, so no request can name a key outside its index:
 *   vector bucket name  3..63 bytes of [a-z0-9-], first and last a letter or digit
 *                       (Amazon S3 User Guide, "Vector bucket naming rules");
 *   index name          3..63 bytes of [a-z0-9.-], first and last a letter or digit
 *                       (the IndexArn pattern of the s3vectors service model).
 * Neither can contain '/', so "vb/idx" is always exactly two storage key segments, and neither can be
 * "." or "..".
 * ARNs: arn:<partition>:s3vectors:<region>:<12-digit account>:bucket/<vb>[/index/<idx>], partition
 * "aws" or "aws-<suffix>". The region and account of a request's ARN are not compared with the
 * deployment's (one deployment serves one namespace); only the names are used.
 * Pure functions; thread-safe. */
#ifndef S3V_HD_NAMES_H
#define S3V_HD_NAMES_H

#include <stddef.h>

#define HD_NAME_MAX 64 /* 63 bytes + NUL */

/* NULL when (s, n) is a valid name, else a static reason ("must be between 3 and 63 characters"). */
const char *hd_name_bucket_problem(const char *s, size_t n);
const char *hd_name_index_problem(const char *s, size_t n);

/* Parses an index ARN into its names (each HD_NAME_MAX bytes). NULL on success, else a reason. */
const char *hd_arn_parse_index(const char *arn, size_t n, char *vb, char *idx);
/* Parses a vector bucket ARN. NULL on success, else a reason. */
const char *hd_arn_parse_bucket(const char *arn, size_t n, char *vb);

/* Writes "arn:aws:s3vectors:<region>:<account>:bucket/<vb>/index/<idx>" (truncated to out_size). */
void hd_arn_format_index(char *out, size_t out_size, const char *region, const char *account, const char *vb,
                         const char *idx);

#endif
