-- deploy/sql/s3vec.sql: query s3vec from Aurora PostgreSQL (or RDS for PostgreSQL) through aws_lambda.invoke.
--
--   SELECT d.title, q.distance
--   FROM s3vec.query_vectors('my-vector-bucket/my-index', ARRAY[0.1, 0.2, ...], 10, '{"genre": "drama"}') AS q
--   JOIN documents AS d ON d.id = q.key
--   ORDER BY q.distance;
--
-- Install (idempotent; re-run it to upgrade, or after CREATE EXTENSION vector to add the pgvector overload):
--   psql -v ON_ERROR_STOP=1 -f deploy/sql/s3vec.sql
-- after `CREATE EXTENSION IF NOT EXISTS aws_lambda CASCADE;` and the IAM set-up in deploy/README.md.
-- It creates the schema s3vec and functions in it, nothing else: no table, no data, no setting. It runs
-- as plain plpgsql (no superuser needed). Uninstall: deploy/sql/s3vec_uninstall.sql.
--
-- Configuration (custom settings; SET per session, or ALTER DATABASE / ALTER ROLE ... SET):
--   s3vec.function_name   the function to invoke: name, partial ARN or ARN (the stack's FunctionArn output)
--   s3vec.region          its Region when function_name is not a full ARN and differs from the cluster's
--   s3vec.vector_bucket   the vector bucket used when an index is named without one
--   aws_lambda.request_timeout_ms  (Aurora's own setting) defaults to 3000 ms; see deploy/README.md for
--                         cold starts (use at least 10000).
--
-- Functions (all SECURITY INVOKER: the caller needs EXECUTE on aws_lambda.invoke too):
--   s3vec.query_vectors(index_name, query_vector real[] | vector, top_k = 10, filter jsonb = NULL,
--                       function_name = NULL) -> TABLE (key text, distance real, metadata jsonb)
--       the top_k nearest vectors, nearest first (distance as S3 Vectors reports it: euclidean distance,
--       or 1 - cosine similarity). numeric[] and untyped literals coerce to real[]; cast double precision[]
--       columns with ::real[]. The vector overload exists when pgvector was installed before this script.
--   s3vec.get_vectors(index_name, keys text[], return_data = false, function_name = NULL)
--       -> TABLE (key text, data real[], metadata jsonb)        missing keys are left out
--   s3vec.call(operation, request jsonb = '{}', function_name = NULL) -> jsonb
--       any S3 Vectors operation; returns the response object
-- index_name is 'vectorBucket/index', 'index' (with s3vec.vector_bucket set) or an index ARN.
--
-- Errors. Every call asks the function for errors as payloads ("errorMode": "payload") and raises them
-- as SQL errors whose message is the function's errorMessage, with errorType, HTTP status and fieldList
-- in DETAIL, and this SQLSTATE:
--   ValidationException            22023 invalid_parameter_value
--   NotFoundException              42704 undefined_object
--   AccessDeniedException          42501 insufficient_privilege
--   ConflictException              55000 object_not_in_prerequisite_state
--   ServiceQuotaExceededException  54000 program_limit_exceeded
--   TooManyRequestsException       53400 configuration_limit_exceeded   (retry later)
--   anything else, or a response that is not an S3 Vectors answer     58000 system_error
-- Arguments rejected before any call: NULL vector or top_k 22004 null_value_not_allowed; a
-- multi-dimensional vector, a bad index name or no function configured 22023. Failures of
-- aws_lambda.invoke itself (network, permissions, the function crashing or timing out) are raised by
-- aws_lambda.invoke as it reports them ("invoke API failed", "lambda invocation failed").

BEGIN;

DO $check$
BEGIN
    IF to_regprocedure('aws_lambda.invoke(text,jsonb,text,text,text,jsonb,character varying)') IS NULL THEN
        RAISE EXCEPTION 's3vec: aws_lambda.invoke(text, jsonb, ...) is not installed'
            USING ERRCODE = '42883',
                  HINT = 'Run CREATE EXTENSION IF NOT EXISTS aws_lambda CASCADE; first (see deploy/README.md).';
    END IF;
END
$check$;

CREATE SCHEMA IF NOT EXISTS s3vec;
COMMENT ON SCHEMA s3vec IS 's3vec: vector search in S3 through aws_lambda.invoke (deploy/sql/s3vec.sql)';

-- The request fields that name an index: {"vectorBucketName", "indexName"} or {"indexArn"}.
CREATE OR REPLACE FUNCTION s3vec.index_ref(index_name text)
RETURNS jsonb
LANGUAGE plpgsql STABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    parts text[];
    vb text;
BEGIN
    IF index_name IS NULL OR index_name = '' THEN
        RAISE EXCEPTION 's3vec: index_name is empty' USING ERRCODE = '22023';
    END IF;
    IF index_name LIKE 'arn:%' THEN
        RETURN jsonb_build_object('indexArn', index_name);
    END IF;
    parts := string_to_array(index_name, '/');
    IF cardinality(parts) = 2 AND parts[1] <> '' AND parts[2] <> '' THEN
        RETURN jsonb_build_object('vectorBucketName', parts[1], 'indexName', parts[2]);
    END IF;
    vb := NULLIF(current_setting('s3vec.vector_bucket', true), '');
    IF cardinality(parts) = 1 AND vb IS NOT NULL THEN
        RETURN jsonb_build_object('vectorBucketName', vb, 'indexName', index_name);
    END IF;
    RAISE EXCEPTION 's3vec: index_name must be ''vectorBucket/index'', an index ARN, or an index name with s3vec.vector_bucket set; got %', quote_literal(index_name)
        USING ERRCODE = '22023';
END
$fn$;

CREATE OR REPLACE FUNCTION s3vec.call(operation text, request jsonb DEFAULT '{}', function_name text DEFAULT NULL)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    fn text := COALESCE(NULLIF(call.function_name, ''), NULLIF(current_setting('s3vec.function_name', true), ''));
    region text := NULLIF(current_setting('s3vec.region', true), '');
    event jsonb;
    r record;
    answer jsonb;
    etype text;
    state text;
BEGIN
    IF fn IS NULL THEN
        RAISE EXCEPTION 's3vec: no function to call'
            USING ERRCODE = '22023',
                  HINT = 'SET s3vec.function_name = ''<the stack''''s FunctionArn>'' (or ALTER DATABASE ... SET), or pass function_name.';
    END IF;
    IF operation IS NULL OR operation !~ '^[A-Za-z]{1,64}$' THEN
        RAISE EXCEPTION 's3vec: operation must be an S3 Vectors operation name such as QueryVectors' USING ERRCODE = '22023';
    END IF;
    IF request IS NULL OR jsonb_typeof(request) <> 'object' THEN
        RAISE EXCEPTION 's3vec: request must be a JSON object' USING ERRCODE = '22023';
    END IF;
    event := request || jsonb_build_object('operation', operation, 'errorMode', 'payload');
    -- A full ARN carries its own Region; aws_lambda.invoke rejects a different one.
    IF fn LIKE 'arn:%' THEN
        region := NULL;
    END IF;
    SELECT * INTO r FROM aws_lambda.invoke(fn, event, region);
    answer := r.payload;
    IF r.status_code IS DISTINCT FROM 200 OR answer IS NULL OR jsonb_typeof(answer) <> 'object' THEN
        RAISE EXCEPTION 's3vec: % answered status %, not an S3 Vectors response: %', fn, r.status_code,
            left(COALESCE(answer::text, '(no payload)'), 500)
            USING ERRCODE = '58000';
    END IF;
    IF answer ? 'errorType' THEN
        etype := answer->>'errorType';
        state := CASE etype
            WHEN 'ValidationException' THEN '22023'
            WHEN 'NotFoundException' THEN '42704'
            WHEN 'AccessDeniedException' THEN '42501'
            WHEN 'ConflictException' THEN '55000'
            WHEN 'ServiceQuotaExceededException' THEN '54000'
            WHEN 'TooManyRequestsException' THEN '53400'
            ELSE '58000' END;
        RAISE EXCEPTION USING
            MESSAGE = COALESCE(answer->>'errorMessage', etype),
            ERRCODE = state,
            DETAIL = format('s3vec %s %s (HTTP %s)%s', operation, etype, COALESCE(answer->>'statusCode', '?'),
                            CASE WHEN answer ? 'fieldList' THEN ', fields: ' || (answer->'fieldList')::text ELSE '' END);
    END IF;
    RETURN answer;
END
$fn$;

CREATE OR REPLACE FUNCTION s3vec.query_vectors(
    index_name text,
    query_vector real[],
    top_k integer DEFAULT 10,
    filter jsonb DEFAULT NULL,
    function_name text DEFAULT NULL)
RETURNS TABLE (key text, distance real, metadata jsonb)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    request jsonb;
    answer jsonb;
BEGIN
    IF query_vector IS NULL OR top_k IS NULL THEN
        RAISE EXCEPTION 's3vec: query_vector and top_k must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF array_ndims(query_vector) IS DISTINCT FROM 1 THEN
        RAISE EXCEPTION 's3vec: query_vector must be a one-dimensional array (it has % dimensions)',
            COALESCE(array_ndims(query_vector), 0) USING ERRCODE = '22023';
    END IF;
    IF array_position(query_vector, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 's3vec: query_vector has NULL elements' USING ERRCODE = '22004';
    END IF;
    request := s3vec.index_ref(index_name) || jsonb_build_object(
        'topK', top_k,
        'queryVector', jsonb_build_object('float32', to_jsonb(query_vector)),
        'returnDistance', true,
        'returnMetadata', true);
    IF filter IS NOT NULL THEN
        request := request || jsonb_build_object('filter', filter);
    END IF;
    answer := s3vec.call('QueryVectors', request, query_vectors.function_name);
    RETURN QUERY
        SELECT v->>'key', (v->>'distance')::real, v->'metadata'
        FROM jsonb_array_elements(COALESCE(answer->'vectors', '[]'::jsonb)) WITH ORDINALITY AS t(v, n)
        ORDER BY n;
END
$fn$;

CREATE OR REPLACE FUNCTION s3vec.get_vectors(
    index_name text,
    keys text[],
    return_data boolean DEFAULT false,
    function_name text DEFAULT NULL)
RETURNS TABLE (key text, data real[], metadata jsonb)
LANGUAGE plpgsql VOLATILE PARALLEL UNSAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    answer jsonb;
BEGIN
    IF keys IS NULL THEN
        RAISE EXCEPTION 's3vec: keys must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF array_ndims(keys) > 1 THEN
        RAISE EXCEPTION 's3vec: keys must be a one-dimensional array' USING ERRCODE = '22023';
    END IF;
    IF array_position(keys, NULL) IS NOT NULL THEN
        RAISE EXCEPTION 's3vec: keys must not hold NULL' USING ERRCODE = '22004';
    END IF;
    answer := s3vec.call('GetVectors', s3vec.index_ref(index_name) || jsonb_build_object(
        'keys', to_jsonb(keys), 'returnData', COALESCE(return_data, false), 'returnMetadata', true),
        get_vectors.function_name);
    RETURN QUERY
        SELECT v->>'key',
               CASE WHEN v->'data'->'float32' IS NULL THEN NULL
                    ELSE ARRAY(SELECT x::real FROM jsonb_array_elements_text(v->'data'->'float32') AS e(x)) END,
               v->'metadata'
        FROM jsonb_array_elements(COALESCE(answer->'vectors', '[]'::jsonb)) AS t(v);
END
$fn$;

-- pgvector: when its type exists now, an overload taking `vector` (cast to real[] by pgvector's own cast).
DO $pgvector$
DECLARE
    vtype text;
BEGIN
    SELECT format('%I.%I', n.nspname, t.typname) INTO vtype
    FROM pg_catalog.pg_type t
    JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace
    JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_type'::regclass AND d.objid = t.oid AND d.deptype = 'e'
    JOIN pg_catalog.pg_extension e ON e.oid = d.refobjid AND e.extname = 'vector'
    WHERE t.typname = 'vector';
    IF vtype IS NULL THEN
        vtype := to_regtype('vector')::text;   -- a type named vector on the search_path
    END IF;
    IF vtype IS NULL THEN
        RAISE NOTICE 's3vec: pgvector is not installed; query_vectors takes real[] only';
        RETURN;
    END IF;
    EXECUTE format($def$
        CREATE OR REPLACE FUNCTION s3vec.query_vectors(
            index_name text,
            query_vector %s,
            top_k integer DEFAULT 10,
            filter jsonb DEFAULT NULL,
            function_name text DEFAULT NULL)
        RETURNS TABLE (key text, distance real, metadata jsonb)
        LANGUAGE sql VOLATILE PARALLEL UNSAFE
        SET search_path = pg_catalog, pg_temp
        AS 'SELECT * FROM s3vec.query_vectors($1, $2::real[], $3, $4, $5)'
    $def$, vtype);
    RAISE NOTICE 's3vec: query_vectors also takes %', vtype;
END
$pgvector$;

COMMENT ON FUNCTION s3vec.query_vectors(text, real[], integer, jsonb, text) IS
    'top_k nearest vectors of an s3vec index: (key, distance, metadata), nearest first';
COMMENT ON FUNCTION s3vec.get_vectors(text, text[], boolean, text) IS
    'vectors of an s3vec index by key: (key, data, metadata); missing keys are left out';
COMMENT ON FUNCTION s3vec.call(text, jsonb, text) IS
    'calls any S3 Vectors operation of the s3vec function; errors become SQL errors';

COMMIT;
