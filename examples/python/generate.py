#!/usr/bin/env python3
"""Generate the Python stubs of the bank's API with grpc_tools.protoc.

Compiles every .proto file under the repository's proto/ (the API) and
examples/proto/ (the google.rpc status and error details the client decodes)
into --out (default: gen/ beside this file, which git ignores). Run it again
whenever proto/ changes; it is quick (well under a second).

    /usr/bin/python3 examples/python/generate.py

grpc_tools is Debian's python3-grpc-tools (apt-get install python3-grpcio
python3-grpc-tools) or pip's grpcio-tools: both bring protoc and the gRPC
plugin, and the well-known types (google/protobuf/*.proto).
"""

import argparse
import pathlib
import shutil
import sys

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
PROTO_ROOTS = [REPO / "proto", REPO / "examples" / "proto"]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "gen"),
                        help="directory to write the stubs into (replaced)")
    args = parser.parse_args(argv)

    try:
        import grpc_tools
        from grpc_tools import protoc
    except ImportError:
        sys.exit(f"generate.py: {sys.executable} has no grpc_tools: "
                 "apt-get install python3-grpcio python3-grpc-tools and run /usr/bin/python3, "
                 "or pip install grpcio-tools")

    out = pathlib.Path(args.out)
    # Start from an empty directory, so that stubs of a removed .proto do not linger.
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)

    files = sorted(str(p.relative_to(root)) for root in PROTO_ROOTS for p in root.rglob("*.proto"))
    well_known = pathlib.Path(grpc_tools.__file__).parent / "_proto"
    cmd = ["grpc_tools.protoc", f"-I{well_known}"]
    cmd += [f"-I{root}" for root in PROTO_ROOTS]
    cmd += [f"--python_out={out}", f"--grpc_python_out={out}"] + files
    if protoc.main(cmd) != 0:
        sys.exit("generate.py: protoc failed (its message is above)")
    print(f"generate.py: {len(files)} .proto files -> {out}")


if __name__ == "__main__":
    main(sys.argv[1:])
