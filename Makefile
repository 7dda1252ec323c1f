# Makefile: the target `sam build` runs for template.yaml (Metadata: BuildMethod: makefile), plus
# shortcuts. The build itself is CMake (see README.md); this file only packages and deploys.
#
#   make build-S3vecFunction ARTIFACTS_DIR=DIR   what `sam build` calls: the unzipped package in DIR
#   make zip [S3VEC_ARCH=x86_64]                 build/package-<arch>/function-<arch>.zip
#   make zips                                    both architectures
#   make check-template                          cfn-lint template.yaml
#   make deploy DEPLOY_ARGS='--stack s3vec --artifact-bucket B --index-bucket I'   (see deploy/deploy.sh)
#   make deploy-dry-run DEPLOY_ARGS='...'        print what deploy would run, run nothing
#   make teardown DEPLOY_ARGS='--stack s3vec'
#
# S3VEC_ARCH (arm64 or x86_64, default arm64 like the template's Architecture parameter) picks the
# architecture; `sam build` does not tell make which one the template asks for, so build x86_64 with
#   S3VEC_ARCH=x86_64 sam build --build-in-source --parameter-overrides Architecture=x86_64
# (--build-in-source: without it sam copies the whole tree, build folders included, before running make).
# S3VEC_BOOTSTRAP=FILE packages an already-built bootstrap instead of building one.

S3VEC_ARCH ?= arm64
S3VEC_BOOTSTRAP ?=
DEPLOY_ARGS ?=
PACKAGE := deploy/package.sh
PACKAGE_FROM := $(if $(S3VEC_BOOTSTRAP),--bootstrap $(S3VEC_BOOTSTRAP),)

.PHONY: build-S3vecFunction zip zips check-template deploy deploy-dry-run teardown

build-S3vecFunction:
	@test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set (sam build sets it)" >&2; exit 2; }
	$(PACKAGE) --arch $(S3VEC_ARCH) $(PACKAGE_FROM) --stage "$(ARTIFACTS_DIR)"

zip:
	$(PACKAGE) --arch $(S3VEC_ARCH) $(PACKAGE_FROM)

zips:
	$(PACKAGE) --arch x86_64
	$(PACKAGE) --arch arm64

check-template:
	cfn-lint template.yaml

deploy:
	deploy/deploy.sh deploy --arch $(S3VEC_ARCH) $(DEPLOY_ARGS)

deploy-dry-run:
	deploy/deploy.sh deploy --dry-run --arch $(S3VEC_ARCH) $(DEPLOY_ARGS)

teardown:
	deploy/deploy.sh teardown $(DEPLOY_ARGS)
