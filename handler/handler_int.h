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
} hd_req;

typedef s3v_status (*hd_op_fn)(hd_req *r);

s3v_status hd_op_query_vectors(hd_req *r);
s3v_status hd_op_get_vectors(hd_req *r);
s3v_status hd_op_list_vectors(hd_req *r);
s3v_status hd_op_get_index(hd_req *r);
s3v_status hd_op_list_indexes(hd_req *r);

#endif
