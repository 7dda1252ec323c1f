-- deploy/sql/aws_lambda_local.sql: a stand-in for Aurora PostgreSQL's aws_lambda and aws_commons
-- extensions, for local development and tests ONLY. Never install it on Aurora or RDS (they have the
-- real extensions: CREATE EXTENSION aws_lambda CASCADE).
--
-- It reproduces the documented signatures of aws_lambda.invoke (the four overloads: function name as
-- text or as aws_commons._lambda_function_arn_1, payload json or jsonb; OUT status_code, payload,
-- executed_version, log_result) and aws_commons.create_lambda_function_arn, and calls a local Lambda
-- Invoke API over HTTP (deploy/local/emulator.py):
--   POST {aws_lambda.endpoint_override}/2015-03-31/functions/{function_name}/invocations[?Qualifier=q]
-- with X-Amz-Invocation-Type, X-Amz-Log-Type and X-Amz-Client-Context (base64 of context).
-- Settings read on every call, as in Aurora: aws_lambda.endpoint_override (required here; in Aurora an
-- empty value means the Region's Lambda endpoint), aws_lambda.connect_timeout_ms (default 1000) and
-- aws_lambda.request_timeout_ms (default 3000).
-- Errors follow Aurora's documented messages: a function error (X-Amz-Function-Error) raises
--   ERROR: lambda invocation failed
--   DETAIL: "<function>" returned error "Unhandled", details: "<error payload>".
-- and a failure of the Invoke API itself (refused connection, timeout, 4xx/5xx from the service)
--   ERROR: invoke API failed
--   DETAIL: AWS Lambda client returned '<reason>'.
-- (SQLSTATE 38000 external_routine_exception here; Aurora's documentation does not state one.)
-- Needs PL/Python (Debian: postgresql-plpython3-15) and a superuser to install (plpython3u is untrusted).

CREATE EXTENSION IF NOT EXISTS plpython3u;
CREATE SCHEMA IF NOT EXISTS aws_commons;
CREATE SCHEMA IF NOT EXISTS aws_lambda;

DO $type$
BEGIN
    IF to_regtype('aws_commons._lambda_function_arn_1') IS NULL THEN
        CREATE TYPE aws_commons._lambda_function_arn_1 AS (function_name text, region text);
    END IF;
END
$type$;

CREATE OR REPLACE FUNCTION aws_commons.create_lambda_function_arn(function_name text, region text DEFAULT NULL)
RETURNS aws_commons._lambda_function_arn_1
LANGUAGE sql IMMUTABLE
AS $$ SELECT ROW(function_name, region)::aws_commons._lambda_function_arn_1 $$;

-- The HTTP call, in PL/Python. Failures come back in error_message and error_detail, which
-- _invoke_local raises: raising from PL/Python would prefix the message with a Python class name.
CREATE OR REPLACE FUNCTION aws_lambda._invoke_py(
    function_name text, payload text, region text, invocation_type text, log_type text, context text,
    qualifier text,
    OUT status_code integer, OUT payload_text text, OUT executed_version text, OUT log_result text,
    OUT error_message text, OUT error_detail text)
LANGUAGE plpython3u VOLATILE
AS $py$
import base64
import http.client
import json
import re
import socket
import urllib.parse


def setting(name, default):
    rows = plpy.execute("SELECT current_setting('%s', true) AS v" % name)
    v = rows[0]["v"] if rows else None
    return v if v not in (None, "") else default


class Failed(Exception):
    pass


def fail(message, detail):
    raise Failed(message, detail)


def api_failed(reason):
    fail("invoke API failed", "AWS Lambda client returned '%s'." % reason)


def invoke():
    if invocation_type not in ("RequestResponse", "Event", "DryRun"):
        fail("invalid invocation type", "invocation_type must be RequestResponse, Event or DryRun")
    if log_type not in ("None", "Tail"):
        fail("invalid log type", "log_type must be None or Tail")
    if function_name is None or function_name == "":
        fail("invalid function name", "function_name must not be empty")
    m = re.match(r"^arn:[^:]+:lambda:([^:]+):", function_name)
    if m and region and region != m.group(1):
        fail("region conflict", "region %s conflicts with the ARN's %s" % (region, m.group(1)))
    endpoint = setting("aws_lambda.endpoint_override", None)
    if not endpoint:
        api_failed("no endpoint: this stand-in needs aws_lambda.endpoint_override = 'http://127.0.0.1:PORT'")
    connect_ms = int(setting("aws_lambda.connect_timeout_ms", "1000"))
    request_ms = int(setting("aws_lambda.request_timeout_ms", "3000"))
    url = urllib.parse.urlsplit(endpoint)
    if url.scheme != "http" or not url.hostname:
        api_failed("endpoint_override must be http://host:port for the stand-in")
    path = "/2015-03-31/functions/%s/invocations" % urllib.parse.quote(function_name, safe=":")
    if qualifier:
        path += "?Qualifier=" + urllib.parse.quote(qualifier)
    headers = {"Content-Type": "application/json", "X-Amz-Invocation-Type": invocation_type,
               "X-Amz-Log-Type": log_type}
    if context is not None:
        headers["X-Amz-Client-Context"] = base64.b64encode(context.encode()).decode()
    body = (payload if payload is not None else "{}").encode()
    conn = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=connect_ms / 1000.0)
    try:
        try:
            conn.connect()
        except (socket.timeout, OSError):
            api_failed("Unable to connect to endpoint")
        conn.sock.settimeout(request_ms / 1000.0)
        try:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except socket.timeout:
            api_failed("Request timeout (aws_lambda.request_timeout_ms = %d)" % request_ms)
        except OSError as e:
            api_failed("connection failed: %s" % e)
    finally:
        conn.close()
    text = data.decode("utf-8", "replace")
    if resp.status >= 300:
        try:
            message = json.loads(text).get("message") or text
        except ValueError:
            message = text
        api_failed("%s (HTTP %d)" % (message, resp.status))
    function_error = resp.getheader("X-Amz-Function-Error")
    if function_error:
        fail("lambda invocation failed",
             '"%s" returned error "%s", details: "%s".' % (function_name, function_error, text))
    return (resp.status, text if text != "" else None, resp.getheader("X-Amz-Executed-Version"),
            resp.getheader("X-Amz-Log-Result"))


try:
    return invoke() + (None, None)
except Failed as e:
    return (None, None, None, None, e.args[0], e.args[1])
$py$;

CREATE OR REPLACE FUNCTION aws_lambda._invoke_local(
    function_name text, payload text, region text, invocation_type text, log_type text, context text,
    qualifier text,
    OUT status_code integer, OUT payload_text text, OUT executed_version text, OUT log_result text)
LANGUAGE plpgsql VOLATILE
AS $$
DECLARE
    r record;
BEGIN
    SELECT * INTO r FROM aws_lambda._invoke_py($1, $2, $3, $4, $5, $6, $7);
    IF r.error_message IS NOT NULL THEN
        RAISE EXCEPTION USING MESSAGE = r.error_message, DETAIL = r.error_detail, ERRCODE = '38000';
    END IF;
    status_code := r.status_code;
    payload_text := r.payload_text;
    executed_version := r.executed_version;
    log_result := r.log_result;
END
$$;

-- The four documented overloads.
CREATE OR REPLACE FUNCTION aws_lambda.invoke(
    IN function_name text, IN payload json,
    IN region text DEFAULT NULL,
    IN invocation_type text DEFAULT 'RequestResponse', IN log_type text DEFAULT 'None',
    IN context json DEFAULT NULL, IN qualifier varchar(128) DEFAULT NULL,
    OUT status_code integer, OUT payload json, OUT executed_version text, OUT log_result text)
LANGUAGE sql VOLATILE
AS $$
    SELECT r.status_code, r.payload_text::json, r.executed_version, r.log_result
    FROM aws_lambda._invoke_local($1, $2::text, $3, $4, $5, $6::text, $7) AS r
$$;

CREATE OR REPLACE FUNCTION aws_lambda.invoke(
    IN function_name aws_commons._lambda_function_arn_1, IN payload json,
    IN invocation_type text DEFAULT 'RequestResponse', IN log_type text DEFAULT 'None',
    IN context json DEFAULT NULL, IN qualifier varchar(128) DEFAULT NULL,
    OUT status_code integer, OUT payload json, OUT executed_version text, OUT log_result text)
LANGUAGE sql VOLATILE
AS $$
    SELECT r.status_code, r.payload_text::json, r.executed_version, r.log_result
    FROM aws_lambda._invoke_local(($1).function_name, $2::text, ($1).region, $3, $4, $5::text, $6) AS r
$$;

CREATE OR REPLACE FUNCTION aws_lambda.invoke(
    IN function_name text, IN payload jsonb,
    IN region text DEFAULT NULL,
    IN invocation_type text DEFAULT 'RequestResponse', IN log_type text DEFAULT 'None',
    IN context jsonb DEFAULT NULL, IN qualifier varchar(128) DEFAULT NULL,
    OUT status_code integer, OUT payload jsonb, OUT executed_version text, OUT log_result text)
LANGUAGE sql VOLATILE
AS $$
    SELECT r.status_code, r.payload_text::jsonb, r.executed_version, r.log_result
    FROM aws_lambda._invoke_local($1, $2::text, $3, $4, $5, $6::text, $7) AS r
$$;

CREATE OR REPLACE FUNCTION aws_lambda.invoke(
    IN function_name aws_commons._lambda_function_arn_1, IN payload jsonb,
    IN invocation_type text DEFAULT 'RequestResponse', IN log_type text DEFAULT 'None',
    IN context jsonb DEFAULT NULL, IN qualifier varchar(128) DEFAULT NULL,
    OUT status_code integer, OUT payload jsonb, OUT executed_version text, OUT log_result text)
LANGUAGE sql VOLATILE
AS $$
    SELECT r.status_code, r.payload_text::jsonb, r.executed_version, r.log_result
    FROM aws_lambda._invoke_local(($1).function_name, $2::text, ($1).region, $3, $4, $5::text, $6) AS r
$$;
