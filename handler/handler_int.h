/* handler/handler_int.h: what handler.c and ops.c share: the handler struct, one request's context,
 * and the request-member validators. Not a public header. */
#ifndef S3V_HD_HANDLER_INT_H
#define S3V_HD_HANDLER_INT_H

#include <stdint.h>

#include <cjson/cJSON.h>

#include "common/buf.h"
#include "handler/errors.h"
#include "handler/handler.h"
#include "handler/names.h"
#include "handler/registry.h"

struct hd_handler {
    hd_config cfg;
    char region[32];
    char account[16];
    s3v_storage *st;
    hd_registry *reg;
    s3v_buf body; /* the operation's output JSON */
    s3v_buf resp; /* the payload posted to the runtime API */
    hd_error err;
    float *qvec; /* query vector scratch, HD_DIM_MAX floats */
    char tmp_dir[1024];
};

/* One request: inputs, outputs and what the operation learnt on the way. */
typedef struct hd_req {
    hd_handler *h;
    const cJSON *in; /* request fields */
    hd_error *err;
    s3v_buf *out; /* output JSON */
    uint64_t deadline;
    const char *region;
    const char *account;
    char vb[HD_NAME_MAX];
    char idx[HD_NAME_MAX];
    uint32_t results;
    double ms_engine;
    int direct; /* a direct invocation (not an HTTP event) */
} hd_req;

typedef s3v_status (*hd_op_fn)(hd_req *r);

/* Request members (ops.c), shared by the read and write operations. A member is NULL when absent or
 * JSON null. The getters leave *out untouched when the member is absent (and set a ValidationException
 * naming it when it is malformed or missing and required). Strings count Unicode characters. */
const cJSON *hd_member(const hd_req *r, const char *name);
s3v_status hd_get_bool(hd_req *r, const char *name, int *out);
s3v_status hd_get_int(hd_req *r, const char *name, long long min, long long max, int required, long long *out,
                      int *present);
s3v_status hd_get_string(hd_req *r, const char *name, size_t min, size_t max, int required, const char **out);
size_t hd_utf8_chars(const char *s);
/* vectorBucketName + indexName, or indexArn, into r->vb / r->idx. */
s3v_status hd_resolve_index(hd_req *r);
/* NotFoundException for r's index. */
s3v_status hd_not_found_index(hd_req *r, s3v_status st);
/* The error for a failed output step (the response cap, or memory). */
s3v_status hd_output_failed(hd_req *r, s3v_status st);
/* The open, fresh index of r (its log read), with open statistics. */
s3v_status hd_open_index(hd_req *r, ivf_index **ix, hd_open_info *info);

s3v_status hd_op_query_vectors(hd_req *r);
s3v_status hd_op_get_vectors(hd_req *r);
s3v_status hd_op_list_vectors(hd_req *r);
s3v_status hd_op_get_index(hd_req *r);
s3v_status hd_op_list_indexes(hd_req *r);
s3v_status hd_op_create_index(hd_req *r);
s3v_status hd_op_delete_index(hd_req *r);
s3v_status hd_op_put_vectors(hd_req *r);
s3v_status hd_op_delete_vectors(hd_req *r);
s3v_status hd_op_compact(hd_req *r);

#endif
