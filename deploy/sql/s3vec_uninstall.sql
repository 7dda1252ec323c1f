-- deploy/sql/s3vec_uninstall.sql: remove what deploy/sql/s3vec.sql created (the schema s3vec and its
-- functions). Leaves aws_lambda, aws_commons, settings and every other object alone.
DROP SCHEMA IF EXISTS s3vec CASCADE;
