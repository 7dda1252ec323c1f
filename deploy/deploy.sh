#!/usr/bin/env bash
# deploy/deploy.sh: package, upload and deploy the s3vec stack (template.yaml); or tear it down.
#
#   deploy/deploy.sh deploy   --stack NAME --artifact-bucket BUCKET --index-bucket BUCKET [options]
#   deploy/deploy.sh teardown --stack NAME [--artifact-bucket BUCKET --delete-artifacts] [options]
#   deploy/deploy.sh outputs  --stack NAME [options]
#
# deploy (with the AWS CLI, the default):
#   1. deploy/package.sh --arch ARCH           -> build/package-ARCH/function-ARCH.zip (or --zip FILE)
#   2. a copy of template.yaml whose CodeUri names that zip
#   3. aws cloudformation package              uploads the zip to s3://ARTIFACTS/s3vec/STACK/<md5>
#   4. aws cloudformation deploy               creates or updates the stack with the parameters
#   5. aws cloudformation describe-stacks      prints the outputs (URLs, ARN, invoke policy)
# deploy --tool sam: S3VEC_ARCH=ARCH sam build --build-in-source, then sam deploy with the same
# parameters (needs the SAM CLI).
# teardown: aws cloudformation delete-stack + wait; --delete-artifacts also removes
# s3://ARTIFACTS/s3vec/STACK/. The index bucket and its data are never touched.
#
# Options:
#   --dry-run                 print every command (shell-quoted, one per line, prefixed "+ "), run none
#   --stack NAME              stack name (default s3vec)
#   --region R, --profile P   passed to every aws/sam command
#   --artifact-bucket B       bucket for the uploaded zip (deploy; teardown --delete-artifacts)
#   --arch arm64|x86_64       default arm64
#   --zip FILE                deploy this zip instead of packaging (its arch must match --arch)
#   --tool aws|sam            default aws
#   --work-dir DIR            where the zip and the generated templates go (default build/ in the repo:
#                             DIR/package-ARCH/function-ARCH.zip, DIR/deploy/STACK.*.yaml)
#   --index-bucket B          -> IndexBucket (required for deploy)
#   --index-prefix P          -> IndexPrefix (default in the template: vectors)
#   --default-index VB/IDX    -> DefaultIndex
#   --memory MB               -> MemorySize
#   --timeout S               -> FunctionTimeout
#   --allow-writes            -> AllowWrites=true
#   --public                  -> HttpApiAuth=NONE and FunctionUrlAuth=NONE (anyone with the URL)
#   --param Key=Value         any other template parameter (repeatable)
# Exit status: 0 on success; 2 for bad arguments (nothing run); otherwise the failing command's status.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
die() { echo "deploy.sh: $*" >&2; exit 2; }

action=${1:-}
case "$action" in
  deploy|teardown|outputs) shift ;;
  -h|--help|help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
  *) die "first argument must be deploy, teardown or outputs (see --help)" ;;
esac

dry=0 stack=s3vec region="" profile="" artifacts="" arch=arm64 zip="" tool=aws delete_artifacts=0
work=$root/build
params=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry=1; shift ;;
    --stack) stack=${2:?}; shift 2 ;;
    --region) region=${2:?}; shift 2 ;;
    --profile) profile=${2:?}; shift 2 ;;
    --artifact-bucket) artifacts=${2:?}; shift 2 ;;
    --arch) arch=${2:?}; shift 2 ;;
    --zip) zip=${2:?}; shift 2 ;;
    --tool) tool=${2:?}; shift 2 ;;
    --work-dir) work=${2:?}; shift 2 ;;
    --index-bucket) params+=("IndexBucket=${2:?}"); shift 2 ;;
    --index-prefix) params+=("IndexPrefix=${2?}"); shift 2 ;;
    --default-index) params+=("DefaultIndex=${2:?}"); shift 2 ;;
    --memory) params+=("MemorySize=${2:?}"); shift 2 ;;
    --timeout) params+=("FunctionTimeout=${2:?}"); shift 2 ;;
    --allow-writes) params+=("AllowWrites=true"); shift ;;
    --public) params+=("HttpApiAuth=NONE" "FunctionUrlAuth=NONE"); shift ;;
    --param) [[ ${2:-} == *=* ]] || die "--param needs Key=Value"; params+=("$2"); shift 2 ;;
    --delete-artifacts) delete_artifacts=1; shift ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
done

# ---- validation (before anything runs) ---------------------------------------------------------
[[ $stack =~ ^[A-Za-z][A-Za-z0-9-]{0,63}$ ]] || die "--stack must be a letter then letters, digits, hyphens (64 max)"
case "$arch" in arm64|x86_64) ;; aarch64) arch=arm64 ;; *) die "--arch must be arm64 or x86_64" ;; esac
case "$tool" in aws|sam) ;; *) die "--tool must be aws or sam" ;; esac
case "$work" in /*) ;; *) work=$PWD/$work ;; esac
bucket_re='^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$'
[ -z "$artifacts" ] || [[ $artifacts =~ $bucket_re ]] || die "--artifact-bucket is not a bucket name"
has_index_bucket=0
for p in "${params[@]+"${params[@]}"}"; do
  key=${p%%=*} value=${p#*=}
  [[ $key =~ ^[A-Za-z0-9]+$ ]] || die "bad parameter name in $p"
  grep -qE "^  $key:$" "$root/template.yaml" || die "template.yaml has no parameter $key"
  [ "$key" = Architecture ] && die "use --arch, not --param Architecture"
  if [ "$key" = IndexBucket ]; then
    [[ $value =~ $bucket_re ]] || die "--index-bucket is not a bucket name"
    has_index_bucket=1
  fi
done
if [ "$action" = deploy ]; then
  [ "$has_index_bucket" = 1 ] || die "deploy needs --index-bucket"
  [ "$tool" = sam ] || [ -n "$artifacts" ] || die "deploy needs --artifact-bucket (where the zip is uploaded)"
  if [ -n "$zip" ] && { [ "$dry" = 0 ] || [ -f "$zip" ]; }; then
    [ -f "$zip" ] || die "--zip $zip does not exist"
    # e_machine of the zip's bootstrap (ELF bytes 18-19): 62 = x86_64, 183 = arm64
    machine=$(set +o pipefail; unzip -p "$zip" bootstrap 2>/dev/null | head -c 20 | od -An -tu2 -j18 -N2 | tr -d ' ')
    case "$arch:$machine" in
      x86_64:62|arm64:183) ;;
      *) die "--zip $zip has no $arch bootstrap at its root (ELF machine '${machine:-none}')" ;;
    esac
  fi
fi
[ "$action" = teardown ] && [ "$delete_artifacts" = 1 ] && [ -z "$artifacts" ] &&
  die "--delete-artifacts needs --artifact-bucket"

aws_opts=()
[ -n "$region" ] && aws_opts+=(--region "$region")
[ -n "$profile" ] && aws_opts+=(--profile "$profile")
params=("Architecture=$arch" "${params[@]+"${params[@]}"}")

# run CMD...: prints "+ CMD" (shell-quoted); runs it unless --dry-run.
run() {
  local q="" a
  for a in "$@"; do q+=" $(printf '%q' "$a")"; done
  echo "+${q}"
  [ "$dry" = 1 ] && return 0
  "$@"
}

out_dir=$work/deploy
artifact_prefix=s3vec/$stack

case "$action" in
deploy)
  echo "deploy.sh: stack $stack, $arch, tool $tool$([ "$dry" = 1 ] && echo ', dry run: nothing is executed')"
  if [ "$tool" = sam ]; then
    run env "S3VEC_ARCH=$arch" sam build --build-in-source --template-file "$root/template.yaml" \
      --build-dir "$out_dir/sam-$stack" "${aws_opts[@]+"${aws_opts[@]}"}"
    sam_bucket=(--resolve-s3)
    [ -n "$artifacts" ] && sam_bucket=(--s3-bucket "$artifacts" --s3-prefix "$artifact_prefix")
    run sam deploy --template-file "$out_dir/sam-$stack/template.yaml" --stack-name "$stack" \
      "${sam_bucket[@]}" --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
      --parameter-overrides "${params[@]}" "${aws_opts[@]+"${aws_opts[@]}"}"
  else
    if [ -z "$zip" ]; then
      zip=$work/package-$arch/function-$arch.zip
      run "$root/deploy/package.sh" --arch "$arch" --build-dir "$work/package-$arch" --out "$zip"
    fi
    case "$zip" in /*) ;; *) zip=$PWD/$zip ;; esac
    tpl=$out_dir/$stack.template.yaml
    packaged=$out_dir/$stack.packaged.yaml
    echo "+ # write $tpl: template.yaml with CodeUri: $zip"
    if [ "$dry" = 0 ]; then
      mkdir -p "$out_dir"
      [ "$(grep -c '^      CodeUri: \.$' "$root/template.yaml")" = 1 ] || { echo "deploy.sh: template.yaml's CodeUri line moved" >&2; exit 1; }
      sed "s|^      CodeUri: \\.\$|      CodeUri: $zip|" "$root/template.yaml" > "$tpl"
    fi
    run aws cloudformation package --template-file "$tpl" --s3-bucket "$artifacts" --s3-prefix "$artifact_prefix" \
      --output-template-file "$packaged" "${aws_opts[@]+"${aws_opts[@]}"}"
    run aws cloudformation deploy --template-file "$packaged" --stack-name "$stack" \
      --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND --no-fail-on-empty-changeset \
      --parameter-overrides "${params[@]}" "${aws_opts[@]+"${aws_opts[@]}"}"
  fi
  run aws cloudformation describe-stacks --stack-name "$stack" --query "Stacks[0].Outputs" --output table \
    "${aws_opts[@]+"${aws_opts[@]}"}"
  ;;
teardown)
  echo "deploy.sh: tear down stack $stack$([ "$dry" = 1 ] && echo ', dry run: nothing is executed')"
  run aws cloudformation delete-stack --stack-name "$stack" "${aws_opts[@]+"${aws_opts[@]}"}"
  run aws cloudformation wait stack-delete-complete --stack-name "$stack" "${aws_opts[@]+"${aws_opts[@]}"}"
  if [ "$delete_artifacts" = 1 ]; then
    run aws s3 rm "s3://$artifacts/$artifact_prefix/" --recursive "${aws_opts[@]+"${aws_opts[@]}"}"
  fi
  echo "deploy.sh: the index bucket and its objects are kept (delete them yourself if you mean to)"
  ;;
outputs)
  run aws cloudformation describe-stacks --stack-name "$stack" --query "Stacks[0].Outputs" --output table \
    "${aws_opts[@]+"${aws_opts[@]}"}"
  ;;
esac
