"""``sluice-deploy`` (or ``python -m deploy``): list, deploy, invoke, delete, serve locally, upload
and publish models.

Exit codes: 0 success, 1 a deploy/AWS/stream error (one ``error:`` line on stderr), 2 bad usage
(argparse), 130 interrupted, 141 its output's reader went away (``| head``). A local endpoint
(``local``, ``deploy --instance-type local``) runs in the foreground until Ctrl-C or SIGTERM: it
lives as long as this process, and stops with it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

from boto3.exceptions import Boto3Error
from botocore.exceptions import BotoCoreError, ClientError

from deploy.errors import SluiceError
from deploy.local import LOCAL_RUNTIME_PORT

EXIT_BROKEN_PIPE = 141  # what a shell reports for a command killed by SIGPIPE, as `cat` would be


def _env_pairs(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--env expects NAME=VALUE, got {pair!r}")
        env[name] = value
    return env


def _positive_seconds(text: str) -> float:
    seconds = float(text)
    if not seconds > 0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return seconds


def _tcp_port(text: str) -> int:
    port = int(text)
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a TCP port is 0-65535, got {text}")
    return port


def cmd_models(args) -> int:
    from deploy.filters import And, check_filter_keys, list_jumpstart_models

    model_filter = And(*args.filter) if args.filter else "true"
    check_filter_keys(model_filter)  # a typo'd key would otherwise list nothing, exit 0
    result = list_jumpstart_models(filter=model_filter, list_versions=args.versions,
                                   list_old_models=args.versions)
    for item in result:
        print(" ".join(item) if isinstance(item, tuple) else item)
    return 0


def _local_model_dir(args) -> str:
    from deploy.jumpstart import ENV_MODEL_DIR

    model_dir = args.model_dir or os.environ.get(ENV_MODEL_DIR)
    if not model_dir:
        raise SystemExit(f"error: a local endpoint needs the model's files: pass --model-dir DIR or set "
                         f"{ENV_MODEL_DIR} (in a Sluice checkout, `make model SIZE=tiny MODEL_DIR=DIR` "
                         "builds the demo model)")
    return model_dir


def cmd_deploy(args) -> int:
    from deploy.catalog import LOCAL_INSTANCE_TYPE
    from deploy.jumpstart import JumpStartModel

    local_model_dir = _check_local_deploy(args) if args.instance_type == LOCAL_INSTANCE_TYPE else None
    model = JumpStartModel(args.model_id, model_version=args.version, role=args.role,
                           image_uri=args.image_uri, env=_env_pairs(args.env),
                           model_data=args.model_data, region=args.region)
    if local_model_dir:
        return _deploy_local(model, local_model_dir, args)
    predictor = model.deploy(initial_instance_count=args.instance_count,
                             instance_type=args.instance_type, endpoint_name=args.endpoint_name, wait=False)
    if not args.no_wait:
        try:
            model.wait(predictor.endpoint_name, poll_interval=args.poll_interval)
        except KeyboardInterrupt:
            # Ctrl-C stops the wait, not the endpoint, whose name is generated unless given.
            name = predictor.endpoint_name
            print(f"interrupted: endpoint {name} keeps creating in the background; "
                  f"`sluice-deploy delete {name}` deletes it", file=sys.stderr)
            raise
    state = "creating" if args.no_wait else "InService"
    print(f"endpoint {predictor.endpoint_name} ({state}); model {predictor.model_name}")
    return 0


def _check_local_deploy(args) -> str:
    """What a local deploy cannot do, said before anything resolves; returns the model dir."""
    if args.no_wait:
        raise SystemExit("error: a local endpoint runs in the foreground until Ctrl-C; --no-wait does not apply")
    if args.docker and not args.image_uri:
        raise SystemExit("error: --docker needs --image-uri (a Sluice image)")
    return _local_model_dir(args)


def _deploy_local(model, model_dir: str, args) -> int:
    """The endpoint lives as long as this process: serve it in the foreground, like `local`."""
    from deploy.local import serve_in_foreground

    endpoint = model.local_endpoint(args.endpoint_name, use_docker=args.docker, model_dir=model_dir,
                                    runtime_port=args.port, container_port=args.container_port,
                                    checkout=args.checkout)
    serve_in_foreground(endpoint)
    return 0


def _predictor(args, invoking: bool = False):
    import boto3

    from deploy.local import local_runtime_session
    from deploy.predictor import Predictor

    local = local_runtime_session(args.region) if invoking else None
    session = local or boto3.Session(region_name=args.region)
    return Predictor(args.endpoint, boto_session=session)


def _invoke_payload(args) -> dict:
    """The TGI body for `invoke`: greedy unless --temperature is given; --seed makes sampling repeatable."""
    # TGI's /invocations returns the prompt too unless told otherwise (return_full_text defaults
    # to true for a local model path); the CLI prints only the continuation, streamed or not.
    parameters = {"max_new_tokens": args.max_new_tokens, "return_full_text": False}
    if args.temperature is not None:
        parameters["temperature"] = args.temperature
    if args.seed is not None:
        parameters["seed"] = args.seed
    return {"inputs": args.prompt, "parameters": parameters}


def cmd_invoke(args) -> int:
    predictor = _predictor(args, invoking=True)
    payload = _invoke_payload(args)
    if args.stream:
        for token in predictor.predict_stream(payload):
            sys.stdout.write(token)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    result = predictor.predict(payload)
    if isinstance(result, list) and result and isinstance(result[0], dict):
        print(result[0].get("generated_text", json.dumps(result[0], ensure_ascii=False)))
    else:
        print(json.dumps(result, ensure_ascii=False) if not isinstance(result, bytes)
              else result.decode("utf-8", "replace"))
    return 0


def cmd_delete(args) -> int:
    predictor = _predictor(args)
    predictor.delete_model()
    predictor.delete_endpoint(delete_endpoint_config=not args.keep_config)
    print(f"deleted endpoint {args.endpoint}")
    return 0


def cmd_local(args) -> int:
    from deploy.local import run_local_endpoint

    model_dir = _local_model_dir(args)
    if args.docker and not args.image_uri:
        raise SystemExit("error: --docker needs --image-uri (a Sluice image)")
    kwargs = {"endpoint_name": args.endpoint_name} if args.endpoint_name else {}
    run_local_endpoint(model_dir, args.port, use_docker=args.docker, image=args.image_uri,
                       container_port=args.container_port, checkout=args.checkout, **kwargs)
    return 0


def cmd_upload(args) -> int:
    from deploy.artifacts import upload_model_dir
    from deploy.catalog import get_model_spec

    prefix = args.prefix or get_model_spec(args.model_id, args.version).artifact_key
    if not prefix:
        raise SystemExit(f"error: {args.model_id} downloads from the hub; pass --prefix")
    print(upload_model_dir(args.model_dir, args.bucket, prefix))
    return 0


def cmd_publish(args) -> int:
    from deploy.publish import publish

    keys = publish(args.image_uri, out_dir=args.out, bucket=args.bucket,
                   regions=args.region or None, model_ids=args.model_id or None)
    where = f"s3://{args.bucket}/" if args.bucket else f"{args.out}/"
    print(f"wrote {len(keys)} files to {where}")
    return 0


def add_local_arguments(parser: argparse.ArgumentParser) -> None:
    """Where a local endpoint's model, ports and container come from (`local`, `deploy --instance-type local`)."""
    parser.add_argument("--model-dir", help="the model's files (default $SLUICE_MODEL_DIR)")
    parser.add_argument("--port", type=_tcp_port, default=LOCAL_RUNTIME_PORT,
                        help=f"local: the runtime API's port (default {LOCAL_RUNTIME_PORT})")
    parser.add_argument("--container-port", type=_tcp_port, help="local: the container's port (default: a free one)")
    parser.add_argument("--docker", action="store_true", help="local: run the image (--image-uri), not a process")
    parser.add_argument("--checkout", help="local: the Sluice checkout that runs the container "
                                           "(default $SLUICE_CHECKOUT, or the one this package runs from)")


def build_parser(prog: str = "sluice-deploy") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="List, deploy, invoke, delete, serve locally, upload and publish Sluice models.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("models", help="list catalog models (SDK filter language)")
    p.add_argument("--filter", action="append", default=[],
                   help="e.g. 'task == llm' or 'instance_type in [ml.g5.2xlarge]' (repeat to AND)")
    p.add_argument("--versions", action="store_true", help="print every version")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("deploy", help="create model, endpoint config and endpoint; "
                                      "--instance-type local serves it here until Ctrl-C")
    p.add_argument("model_id")
    p.add_argument("--version", default="*")
    p.add_argument("--instance-type", help="default: the catalog's; `local` runs it on this machine")
    p.add_argument("--instance-count", type=int, default=1)
    p.add_argument("--endpoint-name")
    p.add_argument("--no-wait", action="store_true", help="return once the endpoint is Creating")
    p.add_argument("--role", help="execution role ARN (default $SLUICE_EXECUTION_ROLE_ARN)")
    p.add_argument("--image-uri",
                   help="default $SLUICE_IMAGE_URI or <account>.dkr.ecr.<region>.amazonaws.com/sluice:latest")
    p.add_argument("--model-data", help="s3://bucket/prefix/ holding the model files")
    p.add_argument("--env", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--region")
    p.add_argument("--poll-interval", type=_positive_seconds, default=15.0, metavar="SECONDS")
    add_local_arguments(p)
    p.set_defaults(func=cmd_deploy)

    p = sub.add_parser("invoke", help="invoke an endpoint (AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME for local)")
    p.add_argument("endpoint")
    p.add_argument("prompt")
    p.add_argument("--stream", action="store_true", help="print tokens as they arrive")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float,
                   help="sample at this temperature (default: greedy; 0 is greedy too)")
    p.add_argument("--seed", type=int, help="sampling seed: same seed, same text")
    p.add_argument("--region")
    p.set_defaults(func=cmd_invoke)

    p = sub.add_parser("delete", help="delete an endpoint, its config and its models")
    p.add_argument("endpoint")
    p.add_argument("--keep-config", action="store_true")
    p.add_argument("--region")
    p.set_defaults(func=cmd_delete)

    p = sub.add_parser("local", help="serve a local endpoint until Ctrl-C or SIGTERM")
    add_local_arguments(p)
    p.add_argument("--endpoint-name")
    p.add_argument("--image-uri")
    p.set_defaults(func=cmd_local)

    p = sub.add_parser("upload", help="upload a model dir to its catalog S3 prefix")
    p.add_argument("--model-dir", required=True)
    p.add_argument("--bucket", required=True)
    p.add_argument("--model-id", default="huggingface-llm-sluice-demo-tiny")
    p.add_argument("--version", default="*")
    p.add_argument("--prefix", help="override the catalog's artifact key")
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("publish", help="write JumpStart metadata for the real SageMaker SDK")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--bucket")
    target.add_argument("--out", help="local folder (AWS_JUMPSTART_*_LOCAL_ROOT_DIR_OVERRIDE)")
    p.add_argument("--image-uri", required=True, help="may contain {region}")
    p.add_argument("--region", action="append", default=[], help="regions to cover (repeat)")
    p.add_argument("--model-id", action="append", default=[], help="publish only these (repeat)")
    p.set_defaults(func=cmd_publish)
    return parser


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    """A warning is one ``warning:`` line on stderr, like errors, not Python's two-line source dump."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None, prog: str = "sluice-deploy") -> int:
    """The console script ``sluice-deploy``; ``python -m deploy`` runs the same."""
    args = build_parser(prog).parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _warning_line
            return args.func(args)
    except argparse.ArgumentTypeError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # The reader went away (`| head`): nothing to report. Later writes, and the flush at exit,
        # go to /dev/null so Python prints no second traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except (SluiceError, ClientError, BotoCoreError, Boto3Error, ValueError, OSError) as error:
        # Boto3Error: S3 transfers (upload) wrap ClientError in S3UploadFailedError. OSError: a
        # folder that cannot be written, a port in use.
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(prog="python -m deploy"))
