/* s3/s3_xml.h: a tiny bounded XML scanner for S3 responses, and the few documents s3vec reads.
 * Internal to s3/.
 *
 * Input is untrusted bytes (ptr, len): the scanner never reads past len, never trusts a length,
 * nests at most S3_XML_MAX_DEPTH elements and rejects malformed markup with S3V_ERR_REMOTE (the
 * response is bad, not our request). It knows elements, text, the five named entities and numeric
 * character references (turned into UTF-8; NUL and surrogates refused), comments, processing
 * instructions and CDATA; attributes are skipped; DOCTYPE is refused (no entity expansion).
 * Element names are matched without namespace prefixes. Pure functions; thread-safe. */
#ifndef S3_XML_H
#define S3_XML_H

#include <stddef.h>
#include <stdint.h>

#include "common/status.h"

#define S3_XML_MAX_DEPTH 16
#define S3_XML_TEXT_MAX  4096 /* longest decoded text value any caller accepts */

typedef enum s3_xml_kind {
    S3_XML_EOF = 0,
    S3_XML_START = 1, /* <name ...> or the start half of <name/> */
    S3_XML_END = 2,   /* </name> or the end half of <name/> */
    S3_XML_TEXT = 3,  /* character data between tags, raw (decode with s3_xml_unescape) */
} s3_xml_kind;

typedef struct s3_xml_token {
    s3_xml_kind kind;
    const char *ptr; /* START/END: the local name (no prefix); TEXT: raw text */
    size_t len;
    int cdata; /* TEXT from a CDATA section: take it as is */
    int depth; /* nesting depth of the element (1 = root) for START/END; of the parent for TEXT */
} s3_xml_token;

typedef struct s3_xml {
    const char *p, *end;
    int depth;
    int pending_end; /* after a self-closing tag: emit its END next */
    int root_done;   /* the root element has closed: only comments and white space may follow */
    const char *pending_name;
    size_t pending_len;
    const char *stack[S3_XML_MAX_DEPTH];
    size_t stack_len[S3_XML_MAX_DEPTH];
} s3_xml;

void s3_xml_init(s3_xml *x, const uint8_t *data, size_t len);
/* Next token. S3V_ERR_REMOTE on malformed input (unbalanced tags, unterminated markup, too deep). */
S3V_MUST_USE s3v_status s3_xml_next(s3_xml *x, s3_xml_token *tok);

/* Decodes entities of raw text (s, n) into out (NUL-terminated). S3V_ERR_TOO_LARGE when it does not
 * fit out_size, S3V_ERR_REMOTE for a malformed entity. *out_len (may be NULL) gets the length. */
S3V_MUST_USE s3v_status s3_xml_unescape(const char *s, size_t n, char *out, size_t out_size, size_t *out_len);

/* Appends the XML escape of s to out (&, <, >, ", ' escaped); returns 0, or -1 when out_size is too small. */
int s3_xml_escape(const char *s, char *out, size_t out_size);

/* Text of the first element at `path` ("Error/Code", "InitiateMultipartUploadResult/UploadId"; the
 * first segment is the root). Returns S3V_OK and fills out, S3V_ERR_NOT_FOUND when absent,
 * S3V_ERR_REMOTE for malformed XML, S3V_ERR_TOO_LARGE when the value does not fit. */
S3V_MUST_USE s3v_status s3_xml_find(const uint8_t *data, size_t len, const char *path, char *out,
                                    size_t out_size);

/* Name of the root element into out (for telling <Error> from a result). */
S3V_MUST_USE s3v_status s3_xml_root(const uint8_t *data, size_t len, char *out, size_t out_size);

/* One ListObjectsV2 entry. */
typedef struct s3_list_entry {
    char *key; /* decoded, NUL-terminated, owned by the page */
    uint64_t size;
    int is_prefix;
} s3_list_entry;

/* One parsed ListObjectsV2 page: entries (Contents and CommonPrefixes merged in byte order of key),
 * truncation and the continuation token. Free with s3_xml_list_free. */
typedef struct s3_list_page {
    s3_list_entry *entries;
    size_t count;
    int truncated;
    char next_token[1024];
} s3_list_page;

/* Parses a ListBucketResult (at most 10000 entries, keys at most 1024 bytes). The page is written
 * only on success. S3V_ERR_REMOTE for malformed or inconsistent documents (a truncated page without
 * a token, an entry without a key, a size that is not a number). */
S3V_MUST_USE s3v_status s3_xml_list_parse(const uint8_t *data, size_t len, s3_list_page *page);
void s3_xml_list_free(s3_list_page *page);

#endif
